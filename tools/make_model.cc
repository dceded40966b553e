// loom-make-model: writes an HF-layout model directory (config.json, generation_config.json,
// safetensors weights, a byte-level tokenizer.json) with random weights, so tests and benchmarks
// need no downloaded checkpoint.
//
// Weights are deterministic in (--seed, tensor name, element index) and do not depend on the
// thread count or the sharding, so the same flags always give the same bytes. Values are
// Irwin-Hall (sum of four uniforms) approximations of a normal: matrices and biases with std 0.02,
// norm weights 1 + 0.02 * noise. A counter-based hash fills tensors in parallel, which writes the
// 0.6B preset in seconds.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/dtype.h"
#include "common/flags.h"
#include "common/model_config.h"
#include "common/safetensors.h"
#include "common/splitmix64.h"
#include "common/status.h"
#include "common/tensor.h"
#include "nlohmann/json.hpp"
#include "tools/byte_level_tokenizer.h"
#include "tools/staged_dir.h"

namespace loom {
namespace {

constexpr char kUsage[] = R"(Usage: loom-make-model --output DIR [options]

Writes an HF-layout model directory with random weights: config.json,
generation_config.json, model.safetensors (or shards + model.safetensors.index.json),
tokenizer.json and tokenizer_config.json.

  --output DIR            directory to create (absent or empty; see --overwrite)
  --preset NAME           tiny (default), llama-tiny, qwen2-tiny, mistral-tiny,
                          qwen3-0.6b, llama3.2-1b
  --architecture NAME     LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM,
                          Qwen3ForCausalLM (or llama, mistral, qwen2, qwen3); sets the
                          family flags (Qwen2: qkv bias, Qwen3: q/k norm)
  --layers N  --hidden N  --heads N  --kv-heads N  --head-dim N
  --intermediate N  --vocab N  --max-position N  --rope-theta X
  --tie | --no-tie        tie lm_head to the embedding
  --qkv-bias | --no-qkv-bias, --qk-norm | --no-qk-norm
  --dtype T               float32, bfloat16 (default) or float16
  --seed N                weight seed (default 0)
  --max-file-size BYTES   shard the weights into files of at most BYTES each
                          (a single tensor larger than that gets a file of its own)
  --overwrite             replace a non-empty output directory
  --help                  this text

Without --head-dim, head_dim follows hidden/heads unless the preset sets it apart.
Exit status: 0 on success, 2 on bad flags, 1 when writing fails.
)";

struct Options {
  std::string output;
  std::string preset = "tiny";
  std::optional<std::string> architecture;
  std::optional<int64_t> layers, hidden, heads, kv_heads, head_dim, intermediate, vocab,
      max_position;
  std::optional<double> rope_theta;
  std::optional<bool> tie, qkv_bias, qk_norm;
  DType dtype = DType::kBF16;
  uint64_t seed = 0;
  int64_t max_file_size = 0;  // 0: one file
  bool overwrite = false;
  bool help = false;
};

// The help text is kUsage above; the specs only declare the flags to the parser.
const std::vector<cli::FlagSpec>& FlagSpecs() {
  static const auto* specs = [] {
    auto* v = new std::vector<cli::FlagSpec>;
    for (const char* name : {"output", "preset", "architecture", "dtype", "seed", "max-file-size",
                             "rope-theta", "layers", "hidden", "heads", "kv-heads", "head-dim",
                             "intermediate", "vocab", "max-position"}) {
      v->push_back({name});
    }
    for (const char* name :
         {"overwrite", "tie", "no-tie", "qkv-bias", "no-qkv-bias", "qk-norm", "no-qk-norm"}) {
      v->push_back({name, true});
    }
    v->push_back({"help", true, "", "", 'h'});
    return v;
  }();
  return *specs;
}

// The value of --NAME when given; it must be a positive integer.
absl::StatusOr<std::optional<int64_t>> PositiveInt(const cli::Flags& flags, const char* name) {
  if (!flags.Has(name)) return std::nullopt;
  LOOM_ASSIGN_OR_RETURN(const int64_t v, flags.Int(name, 0));
  if (v <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", name, ": \"", flags.String(name), "\" is not a positive integer"));
  }
  return v;
}

// --NAME or --no-NAME, when one is given; both together are a contradiction.
absl::StatusOr<std::optional<bool>> Switch(const cli::Flags& flags, const std::string& name) {
  const bool on = flags.Bool(name), off = flags.Bool("no-" + name);
  if (on && off) {
    return absl::InvalidArgumentError(absl::StrCat("--", name, " and --no-", name, " contradict"));
  }
  if (!on && !off) return std::nullopt;
  return on;
}

absl::StatusOr<Options> ParseArgs(int argc, char** argv) {
  LOOM_ASSIGN_OR_RETURN(const cli::Flags flags, cli::Flags::Parse(argc, argv, 1, FlagSpecs()));
  Options o;
  if (flags.Bool("help")) {
    o.help = true;
    return o;
  }
  if (!flags.positional().empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("unexpected argument '", flags.positional().front(), "'"));
  }
  const std::pair<const char*, std::optional<int64_t>*> ints[] = {
      {"layers", &o.layers},     {"hidden", &o.hidden},
      {"heads", &o.heads},       {"kv-heads", &o.kv_heads},
      {"head-dim", &o.head_dim}, {"intermediate", &o.intermediate},
      {"vocab", &o.vocab},       {"max-position", &o.max_position}};
  for (const auto& [name, out] : ints) {
    LOOM_ASSIGN_OR_RETURN(*out, PositiveInt(flags, name));
  }
  LOOM_ASSIGN_OR_RETURN(const std::optional<int64_t> max_file_size,
                        PositiveInt(flags, "max-file-size"));
  o.max_file_size = max_file_size.value_or(0);
  LOOM_ASSIGN_OR_RETURN(o.tie, Switch(flags, "tie"));
  LOOM_ASSIGN_OR_RETURN(o.qkv_bias, Switch(flags, "qkv-bias"));
  LOOM_ASSIGN_OR_RETURN(o.qk_norm, Switch(flags, "qk-norm"));
  o.overwrite = flags.Bool("overwrite");
  o.output = flags.String("output");
  o.preset = flags.String("preset", o.preset);
  if (flags.Has("architecture")) o.architecture = flags.String("architecture");
  if (flags.Has("dtype")) {
    absl::StatusOr<DType> dtype = ParseFloatDTypeName(flags.String("dtype"));
    if (!dtype.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--dtype must be float32, bfloat16 or float16, got '", flags.String("dtype"), "'"));
    }
    o.dtype = *dtype;
  }
  LOOM_ASSIGN_OR_RETURN(o.seed, flags.Uint("seed", o.seed));
  if (flags.Has("rope-theta")) {
    LOOM_ASSIGN_OR_RETURN(const double theta, flags.Double("rope-theta", 0));
    if (!(theta > 0)) {
      return absl::InvalidArgumentError(absl::StrCat("--rope-theta: \"", flags.String("rope-theta"),
                                                     "\" is not a positive number"));
    }
    o.rope_theta = theta;
  }
  if (o.output.empty()) return absl::InvalidArgumentError("--output DIR is required");
  return o;
}

// Sets the architecture, its model_type and the flags that come with the family.
absl::Status SetArchitecture(const std::string& name, ModelConfig& c) {
  static const std::map<std::string, std::pair<std::string, std::string>> kArchitectures = {
      {"llama", {"LlamaForCausalLM", "llama"}},
      {"mistral", {"MistralForCausalLM", "mistral"}},
      {"qwen2", {"Qwen2ForCausalLM", "qwen2"}},
      {"qwen3", {"Qwen3ForCausalLM", "qwen3"}}};
  for (const auto& [short_name, arch] : kArchitectures) {
    if (name == short_name || name == arch.first) {
      c.architecture = arch.first;
      c.model_type = arch.second;
      c.qkv_bias = short_name == "qwen2";
      c.qk_norm = short_name == "qwen3";
      return absl::OkStatus();
    }
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown --architecture '", name,
                   "' (LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM)"));
}

absl::StatusOr<ModelConfig> Preset(const std::string& name) {
  ModelConfig c;
  auto shape = [&c](int64_t layers, int64_t hidden, int64_t heads, int64_t kv_heads,
                    int64_t head_dim, int64_t intermediate, int64_t vocab) {
    c.num_hidden_layers = layers;
    c.hidden_size = hidden;
    c.num_attention_heads = heads;
    c.num_key_value_heads = kv_heads;
    c.head_dim = head_dim;
    c.intermediate_size = intermediate;
    c.vocab_size = vocab;
  };
  if (name == "tiny") {  // a miniature Qwen3: q/k norm, head_dim apart from hidden/heads, GQA
    LOOM_RETURN_IF_ERROR(SetArchitecture("qwen3", c));
    shape(2, 64, 4, 2, 32, 128, 512);
    c.tie_word_embeddings = true;
    c.rope_theta = 1e6;
    c.max_position_embeddings = 2048;
  } else if (name == "llama-tiny") {
    LOOM_RETURN_IF_ERROR(SetArchitecture("llama", c));
    shape(2, 64, 4, 2, 16, 128, 512);
    c.rms_norm_eps = 1e-5;
    c.max_position_embeddings = 2048;
  } else if (name == "qwen2-tiny") {
    LOOM_RETURN_IF_ERROR(SetArchitecture("qwen2", c));
    shape(2, 64, 4, 2, 16, 128, 512);
    c.tie_word_embeddings = true;
    c.rope_theta = 1e6;
    c.max_position_embeddings = 2048;
  } else if (name == "mistral-tiny") {
    LOOM_RETURN_IF_ERROR(SetArchitecture("mistral", c));
    shape(2, 64, 4, 2, 16, 128, 512);
    c.rms_norm_eps = 1e-5;
    c.max_position_embeddings = 2048;
  } else if (name == "qwen3-0.6b") {
    LOOM_RETURN_IF_ERROR(SetArchitecture("qwen3", c));
    shape(28, 1024, 16, 8, 128, 3072, 151936);
    c.tie_word_embeddings = true;
    c.rope_theta = 1e6;
    c.max_position_embeddings = 40960;
  } else if (name == "llama3.2-1b") {
    LOOM_RETURN_IF_ERROR(SetArchitecture("llama", c));
    shape(16, 2048, 32, 8, 64, 8192, 128256);
    c.tie_word_embeddings = true;
    c.rms_norm_eps = 1e-5;
    c.rope_theta = 500000;
    c.max_position_embeddings = 131072;
    c.rope_scaling = {"llama3", 32.0, 1.0, 4.0, 8192};
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown --preset '", name,
                     "' (tiny, llama-tiny, qwen2-tiny, mistral-tiny, qwen3-0.6b, llama3.2-1b)"));
  }
  return c;
}

absl::StatusOr<ModelConfig> BuildConfig(const Options& o) {
  LOOM_ASSIGN_OR_RETURN(ModelConfig c, Preset(o.preset));
  const bool head_dim_follows = c.head_dim * c.num_attention_heads == c.hidden_size;
  if (o.architecture) LOOM_RETURN_IF_ERROR(SetArchitecture(*o.architecture, c));
  if (o.layers) c.num_hidden_layers = *o.layers;
  if (o.hidden) c.hidden_size = *o.hidden;
  if (o.heads) c.num_attention_heads = *o.heads;
  if (o.kv_heads) c.num_key_value_heads = *o.kv_heads;
  if (o.head_dim) {
    c.head_dim = *o.head_dim;
  } else if (head_dim_follows && (o.hidden || o.heads)) {
    if (c.hidden_size % c.num_attention_heads != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("--hidden ", c.hidden_size, " is not a multiple of --heads ",
                       c.num_attention_heads, " (or pass --head-dim)"));
    }
    c.head_dim = c.hidden_size / c.num_attention_heads;
  }
  if (o.intermediate) c.intermediate_size = *o.intermediate;
  if (o.vocab) c.vocab_size = *o.vocab;
  if (o.max_position) c.max_position_embeddings = *o.max_position;
  if (o.rope_theta) c.rope_theta = *o.rope_theta;
  if (o.tie) c.tie_word_embeddings = *o.tie;
  if (o.qkv_bias) {
    // What config.json's attention_bias means for each architecture (ModelConfig).
    if (c.model_type == "mistral" || c.model_type == "qwen2") {
      if (*o.qkv_bias != c.qkv_bias) {
        return absl::InvalidArgumentError(absl::StrCat("--qkv-bias: ", c.architecture,
                                                       " has no switch for attention biases"));
      }
    } else {
      c.qkv_bias = c.o_bias = *o.qkv_bias;
    }
  }
  if (o.qk_norm) c.qk_norm = *o.qk_norm;
  c.torch_dtype = o.dtype;
  if (c.vocab_size < MinByteLevelVocab()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--vocab ", c.vocab_size, " is below the tokenizer's minimum of ", MinByteLevelVocab()));
  }
  LOOM_RETURN_IF_ERROR(c.Validate());
  return c;
}

enum class Init { kMatrix, kNorm };

struct PlannedTensor {
  std::string name;
  std::vector<int64_t> shape;
  Init init;
  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
};

// HF tensor names and shapes of the Llama family, in checkpoint order.
std::vector<PlannedTensor> PlanTensors(const ModelConfig& c) {
  const int64_t h = c.hidden_size, q = c.num_attention_heads * c.head_dim,
                kv = c.num_key_value_heads * c.head_dim, ff = c.intermediate_size;
  std::vector<PlannedTensor> t;
  t.push_back({"model.embed_tokens.weight", {c.vocab_size, h}, Init::kMatrix});
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const std::string p = absl::StrCat("model.layers.", i, ".");
    t.push_back({p + "input_layernorm.weight", {h}, Init::kNorm});
    t.push_back({p + "self_attn.q_proj.weight", {q, h}, Init::kMatrix});
    t.push_back({p + "self_attn.k_proj.weight", {kv, h}, Init::kMatrix});
    t.push_back({p + "self_attn.v_proj.weight", {kv, h}, Init::kMatrix});
    if (c.qkv_bias) {
      t.push_back({p + "self_attn.q_proj.bias", {q}, Init::kMatrix});
      t.push_back({p + "self_attn.k_proj.bias", {kv}, Init::kMatrix});
      t.push_back({p + "self_attn.v_proj.bias", {kv}, Init::kMatrix});
    }
    if (c.qk_norm) {
      t.push_back({p + "self_attn.q_norm.weight", {c.head_dim}, Init::kNorm});
      t.push_back({p + "self_attn.k_norm.weight", {c.head_dim}, Init::kNorm});
    }
    t.push_back({p + "self_attn.o_proj.weight", {h, q}, Init::kMatrix});
    if (c.o_bias) t.push_back({p + "self_attn.o_proj.bias", {h}, Init::kMatrix});
    t.push_back({p + "post_attention_layernorm.weight", {h}, Init::kNorm});
    t.push_back({p + "mlp.gate_proj.weight", {ff, h}, Init::kMatrix});
    t.push_back({p + "mlp.up_proj.weight", {ff, h}, Init::kMatrix});
    t.push_back({p + "mlp.down_proj.weight", {h, ff}, Init::kMatrix});
    if (c.mlp_bias) {
      t.push_back({p + "mlp.gate_proj.bias", {ff}, Init::kMatrix});
      t.push_back({p + "mlp.up_proj.bias", {ff}, Init::kMatrix});
      t.push_back({p + "mlp.down_proj.bias", {h}, Init::kMatrix});
    }
  }
  t.push_back({"model.norm.weight", {h}, Init::kNorm});
  if (!c.tie_word_embeddings) t.push_back({"lm_head.weight", {c.vocab_size, h}, Init::kMatrix});
  return t;
}

uint64_t NameKey(uint64_t seed, const std::string& name) {
  uint64_t h = 0xCBF29CE484222325ull;  // FNV-1a
  for (unsigned char ch : name) h = (h ^ ch) * 0x100000001B3ull;
  return SplitMix64Finalize(h ^ SplitMix64(seed));
}

// Fills elements [begin, end) of `t` from the counter-based stream `key`.
void FillRange(const Tensor& t, Init init, uint64_t key, int64_t begin, int64_t end) {
  constexpr int64_t kChunk = 4096;
  constexpr float kStd = 0.02f;
  const float scale = kStd * std::sqrt(3.0f) / 65535.0f;  // Irwin-Hall(4) has variance 1/3
  float buf[kChunk];
  char* base = static_cast<char*>(t.raw_data());
  for (int64_t start = begin; start < end; start += kChunk) {
    const int64_t n = std::min(kChunk, end - start);
    for (int64_t j = 0; j < n; ++j) {
      uint64_t r = SplitMix64Finalize(key + static_cast<uint64_t>(start + j) * kSplitMix64Gamma);
      int64_t sum = static_cast<int64_t>(r & 0xFFFF) + ((r >> 16) & 0xFFFF) + ((r >> 32) & 0xFFFF) +
                    (r >> 48);
      float z = static_cast<float>(sum - 2 * 65535) * scale;
      buf[j] = init == Init::kNorm ? 1.0f + z : z;
    }
    ConvertFromF32(buf, t.dtype(), base + start * DTypeSize(t.dtype()), static_cast<size_t>(n));
  }
}

Tensor MakeRandomTensor(const PlannedTensor& p, DType dtype, uint64_t seed) {
  Tensor t = Tensor::Empty(dtype, p.shape);
  const uint64_t key = NameKey(seed, p.name);
  const int64_t n = p.numel();
  const int64_t threads = std::clamp<int64_t>(std::thread::hardware_concurrency(), 1, 64);
  if (n < (1 << 16) || threads == 1) {
    FillRange(t, p.init, key, 0, n);
    return t;
  }
  std::vector<std::thread> pool;
  const int64_t per = (n + threads - 1) / threads;
  for (int64_t k = 0; k < threads; ++k) {
    const int64_t b = k * per, e = std::min(n, b + per);
    if (b < e) pool.emplace_back(FillRange, t, p.init, key, b, e);
  }
  for (auto& th : pool) th.join();
  return t;
}

// Groups tensors (in order) into files of at most `max_bytes`; 0 means one file.
std::vector<std::vector<PlannedTensor>> Shard(const std::vector<PlannedTensor>& tensors,
                                              DType dtype, int64_t max_bytes) {
  std::vector<std::vector<PlannedTensor>> shards(1);
  int64_t bytes = 0;
  for (const PlannedTensor& p : tensors) {
    const int64_t size = p.numel() * static_cast<int64_t>(DTypeSize(dtype));
    if (max_bytes > 0 && !shards.back().empty() && bytes + size > max_bytes) {
      shards.emplace_back();
      bytes = 0;
    }
    shards.back().push_back(p);
    bytes += size;
  }
  return shards;
}

absl::Status WriteModel(const Options& o, const ModelConfig& config_in) {
  ModelConfig config = config_in;
  LOOM_ASSIGN_OR_RETURN(ByteLevelTokenizer tokenizer,
                        MakeByteLevelTokenizer(config.vocab_size, config.max_position_embeddings));
  config.bos_token_id = tokenizer.bos_id;
  config.eos_token_ids = {tokenizer.eos_id};
  LOOM_ASSIGN_OR_RETURN(StagedDir dir, StagedDir::Create(o.output, o.overwrite));

  LOOM_RETURN_IF_ERROR(WriteTextFile(dir.File("config.json"), config.ToJson()));
  nlohmann::ordered_json generation = {{"bos_token_id", tokenizer.bos_id},
                                       {"eos_token_id", tokenizer.eos_id},
                                       {"pad_token_id", tokenizer.pad_id}};
  LOOM_RETURN_IF_ERROR(
      WriteTextFile(dir.File("generation_config.json"), generation.dump(2) + "\n"));
  LOOM_RETURN_IF_ERROR(WriteTextFile(dir.File("tokenizer.json"), tokenizer.tokenizer_json));
  LOOM_RETURN_IF_ERROR(
      WriteTextFile(dir.File("tokenizer_config.json"), tokenizer.tokenizer_config_json));

  const std::map<std::string, std::string> metadata = {{"format", "pt"}};
  const auto shards = Shard(PlanTensors(config), o.dtype, o.max_file_size);
  nlohmann::json weight_map = nlohmann::json::object();
  int64_t total_size = 0;
  for (size_t s = 0; s < shards.size(); ++s) {
    const std::string file = shards.size() == 1 ? "model.safetensors"
                                                : absl::StrFormat("model-%05d-of-%05d.safetensors",
                                                                  s + 1, shards.size());
    std::vector<std::pair<std::string, Tensor>> tensors;
    for (const PlannedTensor& p : shards[s]) {
      tensors.emplace_back(p.name, MakeRandomTensor(p, o.dtype, o.seed));
      total_size += static_cast<int64_t>(tensors.back().second.nbytes());
      weight_map[p.name] = file;
    }
    LOOM_RETURN_IF_ERROR(WriteSafetensors(dir.File(file), tensors, metadata));
  }
  if (shards.size() > 1) {
    nlohmann::json index = {{"metadata", {{"total_size", total_size}}}, {"weight_map", weight_map}};
    LOOM_RETURN_IF_ERROR(
        WriteTextFile(dir.File("model.safetensors.index.json"), index.dump(2) + "\n"));
  }
  return dir.Commit();
}

}  // namespace
}  // namespace loom

int main(int argc, char** argv) {
  auto options = loom::ParseArgs(argc, argv);
  if (!options.ok()) {
    std::fprintf(stderr, "loom-make-model: %s\n", std::string(options.status().message()).c_str());
    return 2;
  }
  if (options->help) {
    std::fputs(loom::kUsage, stdout);
    return 0;
  }
  auto config = loom::BuildConfig(*options);
  if (!config.ok()) {
    std::fprintf(stderr, "loom-make-model: %s\n", std::string(config.status().message()).c_str());
    return 2;
  }
  absl::Status status = loom::WriteModel(*options, *config);
  if (!status.ok()) {
    std::fprintf(stderr, "loom-make-model: %s\n", std::string(status.message()).c_str());
    // An existing, non-empty output directory is a usage error, not a failed write.
    return absl::IsAlreadyExists(status) ? 2 : 1;
  }
  return 0;
}
