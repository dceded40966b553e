// Tensor parallelism is invisible in the output: the fixture models run as 2 and 4 real processes
// joined by Gloo give the tokens of the single-process model and its logits to within 1e-4, with
// KV heads replicated where there are fewer than ranks and the vocabulary padded where the ranks
// do not divide it. TP sizes a model cannot take fail at Create with a clear error.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/safetensors.h"
#include "common/status.h"
#include "tests/test_paths.h"
#include "tests/worker/rank_processes.h"
#include "worker/comm/gloo_communicator.h"
#include "worker/loader/weight_load.h"
#include "worker/model_runner.h"

namespace loom {
namespace {

using testing::RankContext;

constexpr int kDecodeSteps = 8;

// Greedy generation for two prompts batched: a prefill step, then kDecodeSteps decode steps.
struct Generation {
  std::vector<std::vector<int32_t>> tokens;  // per step, one token per sequence
  std::vector<std::vector<float>> logits;    // per step, [2 * vocab]
};

absl::StatusOr<std::unique_ptr<ModelRunner>> LoadRunner(const std::string& model_dir,
                                                        Communicator* comm) {
  LOOM_ASSIGN_OR_RETURN(ModelConfig config, ModelConfig::FromModelDir(model_dir));
  ModelRunnerOptions options;
  options.decoder.weight_dtype = DType::kF32;
  options.decoder.comm = comm;
  options.block_size = 4;
  options.kv_cache_bytes = 1 << 20;
  LOOM_ASSIGN_OR_RETURN(auto runner, ModelRunner::Create(config, options));
  // Each rank loads its own part from the files (no collective needed for that).
  SingleRankCommunicator alone;
  LoadConfig load;
  load.model = model_dir;
  LOOM_RETURN_IF_ERROR(LoadWeights(load, runner->decoder(), alone).status());
  return runner;
}

absl::StatusOr<Generation> Generate(ModelRunner& runner) {
  const std::vector<std::vector<int32_t>> prompts = {
      {1, 17, 250, 3, 99, 42, 7}, {1, 400, 12, 12, 80, 311, 5, 64, 201, 9, 33, 150}};
  constexpr int kBlocksPerSequence = 8;  // 32 slots: room for 12 + 9 tokens
  std::vector<SequenceStep> seqs(prompts.size());
  for (size_t i = 0; i < prompts.size(); ++i) {
    seqs[i].seq_id = static_cast<int64_t>(i);
    seqs[i].token_ids = prompts[i];
    for (int b = 0; b < kBlocksPerSequence; ++b) {
      seqs[i].block_table.push_back(static_cast<int32_t>(i * kBlocksPerSequence + b));
    }
  }
  Generation gen;
  for (int step = 0; step <= kDecodeSteps; ++step) {
    StepInput input;
    input.sequences = seqs;
    input.return_logits = true;
    LOOM_ASSIGN_OR_RETURN(StepOutput out, runner.Execute(input));
    gen.tokens.push_back(out.tokens);
    const float* l = out.logits.data<float>();
    gen.logits.emplace_back(l, l + out.logits.numel());
    for (size_t i = 0; i < seqs.size(); ++i) {
      seqs[i].start_position += static_cast<int32_t>(seqs[i].token_ids.size());
      seqs[i].token_ids = {out.tokens[i]};
      seqs[i].sample_index += 1;
    }
  }
  return gen;
}

std::string ResultPath(const std::string& dir, int rank) {
  return absl::StrCat(dir, "/result", rank, ".txt");
}

// Text with 9 significant digits: f32 values round-trip exactly.
absl::Status WriteGeneration(const Generation& gen, const std::string& path) {
  std::ofstream out(path);
  out.precision(9);
  out << gen.tokens.size() << "\n";
  for (size_t s = 0; s < gen.tokens.size(); ++s) {
    out << gen.tokens[s].size();
    for (int32_t t : gen.tokens[s]) out << " " << t;
    out << "\n" << gen.logits[s].size();
    for (float v : gen.logits[s]) out << " " << v;
    out << "\n";
  }
  out.close();
  return out ? absl::OkStatus() : absl::InternalError(absl::StrCat("cannot write ", path));
}

absl::StatusOr<Generation> ReadGeneration(const std::string& path) {
  std::ifstream in(path);
  size_t steps = 0;
  if (!(in >> steps)) return absl::NotFoundError(absl::StrCat("no result in ", path));
  Generation gen;
  gen.tokens.resize(steps);
  gen.logits.resize(steps);
  for (size_t s = 0; s < steps; ++s) {
    size_t n = 0;
    in >> n;
    gen.tokens[s].resize(n);
    for (int32_t& t : gen.tokens[s]) in >> t;
    in >> n;
    gen.logits[s].resize(n);
    for (float& v : gen.logits[s]) in >> v;
  }
  if (!in) return absl::DataLossError(absl::StrCat("truncated result in ", path));
  return gen;
}

// One rank of a TP group: join the group, load this rank's shard, generate, write the result.
const bool kGenerateRole = testing::RegisterRankRole("tp_generate", [](const RankContext& c) {
  GlooOptions options;
  options.rank = c.rank;
  options.world_size = c.world_size;
  LOOM_ASSIGN_OR_RETURN(options.store, MakeFileStore(c.dir + "/store"));
  options.timeout = std::chrono::seconds(20);
  LOOM_ASSIGN_OR_RETURN(auto comm, GlooCommunicator::Create(options));
  LOOM_ASSIGN_OR_RETURN(auto runner, LoadRunner(c.args.at("model"), comm.get()));
  LOOM_ASSIGN_OR_RETURN(Generation gen, Generate(*runner));
  return WriteGeneration(gen, ResultPath(c.dir, c.rank));
});

std::string ModelDir(const std::string& name) {
  return absl::StrCat(testing::SourceDir(), "/tests/data/models/", name, "-f32");
}

// Runs `model_dir` at TP size `tp` and checks every rank against the single-process `reference`.
void ExpectSameAsSingleProcess(const std::string& model_dir, int tp, const Generation& reference) {
  SCOPED_TRACE(absl::StrCat(model_dir, " at TP ", tp));
  std::string dir;
  absl::Status s =
      testing::RunRanks("tp_generate", tp, {{"model", model_dir}}, std::chrono::seconds(60), &dir);
  ASSERT_TRUE(s.ok()) << s;
  for (int rank = 0; rank < tp; ++rank) {
    auto gen = ReadGeneration(ResultPath(dir, rank));
    ASSERT_TRUE(gen.ok()) << gen.status();
    ASSERT_EQ(gen->tokens.size(), reference.tokens.size());
    float worst = 0;
    for (size_t step = 0; step < reference.tokens.size(); ++step) {
      // The first step that differs says it all; later ones only repeat it.
      ASSERT_EQ(gen->tokens[step], reference.tokens[step]) << "rank " << rank << " step " << step;
      ASSERT_EQ(gen->logits[step].size(), reference.logits[step].size());
      for (size_t i = 0; i < reference.logits[step].size(); ++i) {
        worst = std::max(worst, std::fabs(gen->logits[step][i] - reference.logits[step][i]));
      }
      ASSERT_LE(worst, 1e-4f) << "rank " << rank << " step " << step;
    }
    ::testing::Test::RecordProperty(absl::StrCat("max_logit_diff_tp", tp, "_rank", rank),
                                    absl::StrCat(worst));
  }
}

class TensorParallelTest : public ::testing::TestWithParam<std::string> {};

TEST_P(TensorParallelTest, TwoAndFourRanksGiveTheSingleProcessTokensAndLogits) {
  const std::string model_dir = ModelDir(GetParam());
  auto single = LoadRunner(model_dir, nullptr);
  ASSERT_TRUE(single.ok()) << single.status();
  auto reference = Generate(**single);
  ASSERT_TRUE(reference.ok()) << reference.status();
  for (int tp : {2, 4}) ExpectSameAsSingleProcess(model_dir, tp, *reference);
}

// 4 query heads, 2 KV heads (1 for mistral), vocab 512: TP 4 replicates the KV heads.
INSTANTIATE_TEST_SUITE_P(Fixtures, TensorParallelTest,
                         ::testing::Values("llama-gqa", "llama3-rope", "llama-linear-rope", "qwen2",
                                           "qwen3", "mistral"),
                         [](const auto& info) {
                           return absl::StrReplaceAll(info.param, {{"-", "_"}});
                         });

// A copy of fixture `name` whose vocabulary is cut to `vocab` rows (embedding and LM head).
std::string WithVocab(const std::string& name, int64_t vocab) {
  const std::string src = ModelDir(name);
  const std::string dst = testing::MakeTempDir("loom-vocab");
  std::ifstream config_in(src + "/config.json");
  std::stringstream config;
  config << config_in.rdbuf();
  const std::string text = config.str();
  EXPECT_TRUE(absl::StrContains(text, "\"vocab_size\": 512"));
  std::ofstream(dst + "/config.json") << absl::StrReplaceAll(
      text, {{"\"vocab_size\": 512", absl::StrCat("\"vocab_size\": ", vocab)}});
  auto ckpt = Checkpoint::Open(src);
  EXPECT_TRUE(ckpt.ok()) << ckpt.status();
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const std::string& n : (*ckpt)->Names()) {
    Tensor t = *(*ckpt)->Get(n);
    if (n == "model.embed_tokens.weight" || n == "lm_head.weight")
      t = t.Slice(0, 0, vocab)->Clone();
    tensors.emplace_back(n, t);
  }
  EXPECT_TRUE(WriteSafetensors(dst + "/model.safetensors", tensors).ok());
  return dst;
}

TEST(TensorParallelVocabTest, AVocabularyTheRanksDoNotDivideIsPadded) {
  // 509 is prime: every TP size pads. Untied (llama-gqa) and tied (qwen2) LM heads.
  for (const char* name : {"llama-gqa", "qwen2"}) {
    const std::string model_dir = WithVocab(name, 509);
    auto single = LoadRunner(model_dir, nullptr);
    ASSERT_TRUE(single.ok()) << single.status();
    auto reference = Generate(**single);
    ASSERT_TRUE(reference.ok()) << reference.status();
    ASSERT_EQ(reference->logits[0].size(), 2u * 509);
    for (int tp : {2, 4}) ExpectSameAsSingleProcess(model_dir, tp, *reference);
  }
}

// A communicator that claims a TP size without peers: enough for Create's checks.
class FakeCommunicator : public SingleRankCommunicator {
 public:
  FakeCommunicator(int64_t rank, int64_t world) : rank_(rank), world_(world) {}
  int64_t rank() const override { return rank_; }
  int64_t world_size() const override { return world_; }

 private:
  int64_t rank_, world_;
};

TEST(TensorParallelSizeTest, SizesTheHeadsCannotTakeFailAtCreateNamingTheHeads) {
  auto config = ModelConfig::FromModelDir(ModelDir("llama-gqa"));  // 4 heads, 2 KV heads
  ASSERT_TRUE(config.ok()) << config.status();
  for (int64_t tp : {3, 8}) {
    FakeCommunicator comm(0, tp);
    DecoderOptions options;
    options.comm = &comm;
    auto decoder = Decoder::Create(*config, options);
    ASSERT_FALSE(decoder.ok()) << "TP " << tp;
    EXPECT_TRUE(absl::IsInvalidArgument(decoder.status()));
    EXPECT_TRUE(
        absl::StrContains(decoder.status().message(), absl::StrCat("tensor-parallel size ", tp)))
        << decoder.status();
    EXPECT_TRUE(absl::StrContains(decoder.status().message(), "4 attention heads"))
        << decoder.status();
  }
}

TEST(TensorParallelSizeTest, FewerKvHeadsThanRanksHoldsOneKvHeadPerRank) {
  auto config = ModelConfig::FromModelDir(ModelDir("mistral"));  // 4 heads, 1 KV head
  ASSERT_TRUE(config.ok()) << config.status();
  for (int64_t tp : {2, 4}) {
    FakeCommunicator comm(tp - 1, tp);
    DecoderOptions options;
    options.comm = &comm;
    auto decoder = Decoder::Create(*config, options);
    ASSERT_TRUE(decoder.ok()) << decoder.status();
    EXPECT_EQ((*decoder)->CacheShape(16).num_kv_heads, 1);
  }
}

}  // namespace
}  // namespace loom
