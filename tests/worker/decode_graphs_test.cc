// Decode graphs on a fake GPU whose graphs replay their recording: bucket choice, padding that
// never touches the real sequences' cache, equality with the host's eager steps, and
// invalidation when what a graph points at moves.
#include "worker/decode_graphs.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "tests/test_paths.h"
#include "tests/worker/fake_gpu.h"
#include "worker/comm/communicator.h"
#include "worker/loader/weight_load.h"
#include "worker/model/decoder.h"
#include "worker/model_runner.h"

namespace loom {
namespace {

TEST(DecodeGraphsTest, BucketsCoverEveryBatchUpToTheLargest) {
  EXPECT_EQ(DecodeGraphs::Buckets(64),
            (std::vector<int64_t>{1, 2, 4, 8, 16, 24, 32, 40, 48, 56, 64}));
  EXPECT_EQ(DecodeGraphs::Buckets(6), (std::vector<int64_t>{1, 2, 4, 6}));
  EXPECT_EQ(DecodeGraphs::Buckets(1), (std::vector<int64_t>{1}));
  DecodeGraphs graphs({/*max_batch=*/20, /*max_context=*/64, /*single_rank=*/true});
  EXPECT_EQ(graphs.BucketFor(1), 1);
  EXPECT_EQ(graphs.BucketFor(3), 4);
  EXPECT_EQ(graphs.BucketFor(9), 16);
  EXPECT_EQ(graphs.BucketFor(17), 20);
  EXPECT_EQ(graphs.BucketFor(21), 0);
  EXPECT_EQ(graphs.BucketFor(0), 0);
}

SequenceStep Decode(int64_t id, int32_t token, int32_t position) {
  SequenceStep s;
  s.seq_id = id;
  s.token_ids = {token};
  s.start_position = position;
  s.block_table = {static_cast<int32_t>(2 * id), static_cast<int32_t>(2 * id + 1)};
  return s;
}

TEST(DecodeGraphsTest, OnlyPureDecodeStepsOfOneRankWithinTheLimitsQualify) {
  DecodeGraphs graphs({4, 8, true});
  StepInput decode;
  decode.sequences = {Decode(0, 5, 3), Decode(1, 6, 7)};
  EXPECT_TRUE(graphs.Eligible(decode));
  StepInput prefill = decode;
  prefill.sequences[0].token_ids = {1, 2};
  EXPECT_FALSE(graphs.Eligible(prefill));
  StepInput chunk = decode;
  chunk.sequences[1].sample = false;
  EXPECT_FALSE(graphs.Eligible(chunk));
  StepInput long_context = decode;
  long_context.sequences[1].start_position = 8;  // a 9th key: over max_context
  EXPECT_FALSE(graphs.Eligible(long_context));
  StepInput wide;
  for (int i = 0; i < 5; ++i) wide.sequences.push_back(Decode(i, 1, 0));
  EXPECT_FALSE(graphs.Eligible(wide));
  DecodeGraphs tp({4, 8, false});
  EXPECT_FALSE(tp.Eligible(decode));
}

std::string Model() { return absl::StrCat(testing::SourceDir(), "/tests/data/models/qwen3-f32"); }

absl::StatusOr<std::unique_ptr<ModelRunner>> Runner(kernels::ExecutionContext* context) {
  LOOM_ASSIGN_OR_RETURN(ModelConfig config, ModelConfig::FromModelDir(Model()));
  ModelRunnerOptions options;
  options.decoder.weight_dtype = DType::kF32;
  options.decoder.context = context;
  options.block_size = 4;
  options.kv_cache_blocks = 24;
  options.graph_max_batch = 8;
  options.graph_max_context = 32;
  LOOM_ASSIGN_OR_RETURN(auto runner, ModelRunner::Create(config, options));
  SingleRankCommunicator alone;
  LoadConfig load;
  load.model = Model();
  LOOM_RETURN_IF_ERROR(LoadWeights(load, runner->decoder(), alone).status());
  return runner;
}

// Greedy generation for `prompts` (prefill, then `steps` decode steps of the batch), every
// step's tokens and logits; the last `drop_after` steps decode only the first sequence.
struct Trace {
  std::vector<std::vector<int32_t>> tokens;
  std::vector<std::vector<float>> logits;
};

absl::StatusOr<Trace> Generate(ModelRunner& runner, int steps, int single_after) {
  const std::vector<std::vector<int32_t>> prompts = {
      {1, 17, 250, 3}, {1, 400, 12}, {7, 8, 9, 10, 11}};
  Trace trace;
  StepInput step;
  step.return_logits = true;
  std::vector<int32_t> lengths;
  for (size_t i = 0; i < prompts.size(); ++i) {
    SequenceStep s = Decode(static_cast<int64_t>(i), 0, 0);
    s.token_ids = prompts[i];
    s.block_table.clear();
    for (int b = 0; b < 4; ++b) s.block_table.push_back(static_cast<int32_t>(4 * i + b));
    step.sequences.push_back(s);
    lengths.push_back(static_cast<int32_t>(prompts[i].size()));
  }
  for (int n = 0; n <= steps; ++n) {
    LOOM_ASSIGN_OR_RETURN(StepOutput out, runner.Execute(step));
    trace.tokens.push_back(out.tokens);
    trace.logits.emplace_back(out.logits.data<float>(),
                              out.logits.data<float>() + out.logits.numel());
    const size_t live = n + 1 >= single_after ? 1 : step.sequences.size();
    step.sequences.resize(live);
    for (size_t i = 0; i < live; ++i) {
      step.sequences[i].token_ids = {out.tokens[i]};
      step.sequences[i].start_position = lengths[i]++;
    }
  }
  return trace;
}

void ExpectSame(const Trace& a, const Trace& b) {
  ASSERT_EQ(a.tokens.size(), b.tokens.size());
  for (size_t i = 0; i < a.tokens.size(); ++i) {
    EXPECT_EQ(a.tokens[i], b.tokens[i]) << "step " << i;
    ASSERT_EQ(a.logits[i].size(), b.logits[i].size()) << "step " << i;
    EXPECT_EQ(std::memcmp(a.logits[i].data(), b.logits[i].data(), a.logits[i].size() * 4), 0)
        << "step " << i;
  }
}

TEST(DecodeGraphsTest, ReplayedStepsEqualTheHostsEagerOnesAndPaddingWritesNothing) {
  auto host = Runner(nullptr);
  ASSERT_TRUE(host.ok()) << host.status();
  EXPECT_EQ((*host)->decode_graphs(), nullptr);  // the host has no graphs
  testing::FakeGpu gpu({int64_t{1} << 40, int64_t{1} << 40}, /*graphs=*/true);
  auto device = Runner(&gpu);
  ASSERT_TRUE(device.ok()) << device.status();
  ASSERT_NE((*device)->decode_graphs(), nullptr);
  // Batch 3 (bucket 4, one padding row) for 5 steps, then batch 1 (bucket 1) for 4.
  auto expected = Generate(**host, 9, 6);
  ASSERT_TRUE(expected.ok()) << expected.status();
  auto got = Generate(**device, 9, 6);
  ASSERT_TRUE(got.ok()) << got.status();
  ExpectSame(*expected, *got);
  const DecodeGraphs& graphs = *(*device)->decode_graphs();
  // Each bucket: its first step eager, then one capture and replays for the rest.
  EXPECT_EQ(graphs.captures(), 2);
  EXPECT_EQ(graphs.replays(), 4 + 3);
  EXPECT_TRUE(graphs.failed().empty());
}

TEST(DecodeGraphsTest, MovingTheCacheOrTheScratchDropsTheGraphsAndAFailedCaptureRunsEagerly) {
  auto host = Runner(nullptr);
  ASSERT_TRUE(host.ok()) << host.status();
  auto expected = Generate(**host, 5, 100);
  ASSERT_TRUE(expected.ok()) << expected.status();

  testing::FakeGpu gpu({int64_t{1} << 40, int64_t{1} << 40}, /*graphs=*/true);
  auto device = Runner(&gpu);
  ASSERT_TRUE(device.ok()) << device.status();
  ASSERT_TRUE(Generate(**device, 5, 100).ok());
  const DecodeGraphs& graphs = *(*device)->decode_graphs();
  EXPECT_EQ(graphs.captures(), 1);
  // A new cache (its addresses move): every graph goes and is captured again.
  ASSERT_TRUE((*device)->ResizeKvCache((*device)->kv_cache().nbytes()).ok());
  auto again = Generate(**device, 5, 100);
  ASSERT_TRUE(again.ok()) << again.status();
  ExpectSame(*expected, *again);
  EXPECT_EQ(graphs.invalidations(), 1);
  EXPECT_EQ(graphs.captures(), 2);
  // The kernels' scratch moved: the same.
  gpu.scratch_generation++;
  ASSERT_TRUE(Generate(**device, 5, 100).ok());
  EXPECT_EQ(graphs.invalidations(), 2);
  EXPECT_EQ(graphs.captures(), 3);
  // An in-place reload keeps every address: the graphs stay and serve the new weights.
  SingleRankCommunicator alone;
  LoadConfig load;
  load.model = Model();
  ASSERT_TRUE(LoadWeights(load, (*device)->decoder(), alone).ok());
  auto reloaded = Generate(**device, 5, 100);
  ASSERT_TRUE(reloaded.ok()) << reloaded.status();
  ExpectSame(*expected, *reloaded);
  EXPECT_EQ(graphs.invalidations(), 2);

  testing::FakeGpu failing({int64_t{1} << 40, int64_t{1} << 40}, /*graphs=*/true);
  failing.fail_captures = true;
  auto eager = Runner(&failing);
  ASSERT_TRUE(eager.ok()) << eager.status();
  auto fallback = Generate(**eager, 5, 100);
  ASSERT_TRUE(fallback.ok()) << fallback.status();
  ExpectSame(*expected, *fallback);
  EXPECT_EQ((*eager)->decode_graphs()->captures(), 0);
  EXPECT_EQ((*eager)->decode_graphs()->failed(), (std::set<int64_t>{4}));
}

TEST(DecodeGraphsTest, SwitchingWeightSetsBackAndForthCapturesEachSetOnce) {
  auto host = Runner(nullptr);
  ASSERT_TRUE(host.ok()) << host.status();
  auto expected = Generate(**host, 5, 100);
  ASSERT_TRUE(expected.ok()) << expected.status();
  testing::FakeGpu gpu({int64_t{1} << 40, int64_t{1} << 40}, /*graphs=*/true);
  auto device = Runner(&gpu);
  ASSERT_TRUE(device.ok()) << device.status();
  ASSERT_TRUE(Generate(**device, 5, 100).ok());
  const DecodeGraphs& graphs = *(*device)->decode_graphs();
  EXPECT_EQ(graphs.captures(), 1);
  // A second set of the same weights in other buffers, as a staged set is.
  auto config = ModelConfig::FromModelDir(Model());
  ASSERT_TRUE(config.ok());
  DecoderOptions set_options;
  set_options.weight_dtype = DType::kF32;
  set_options.context = &gpu;
  auto other = Decoder::Create(*config, set_options);
  ASSERT_TRUE(other.ok()) << other.status();
  SingleRankCommunicator alone;
  LoadConfig load;
  load.model = Model();
  ASSERT_TRUE(LoadWeights(load, **other, alone).ok());
  // Commit (to the other set), rollback, commit again: each set captures once.
  for (int switches = 1; switches <= 3; ++switches) {
    ASSERT_TRUE((*device)->decoder().SwapWeights(**other).ok());
    auto got = Generate(**device, 5, 100);
    ASSERT_TRUE(got.ok()) << got.status();
    ExpectSame(*expected, *got);
    EXPECT_EQ(graphs.captures(), 2) << "after switch " << switches;
  }
  EXPECT_EQ(graphs.invalidations(), 0);
}

}  // namespace
}  // namespace loom
