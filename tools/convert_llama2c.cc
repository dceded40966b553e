// loom-convert-llama2c: converts a llama2.c checkpoint (karpathy/llama2.c, the "legacy" version-0
// export that run.c reads) into an HF LlamaForCausalLM directory.
//
// The file is a header of 7 int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size,
// seq_len; a negative vocab_size means an untied classifier follows), then fp32 tensors in the
// order run.c maps them: token_embedding [vocab, dim], rms_att [L, dim], wq [L, dim, dim],
// wk [L, kv_dim, dim], wv [L, kv_dim, dim], wo [L, dim, dim], rms_ffn [L, dim],
// w1 [L, hidden, dim], w2 [L, dim, hidden], w3 [L, hidden, dim], rms_final [dim], two legacy
// rotary tables of seq_len * head_size / 2 floats each (skipped), then wcls [vocab, dim] when
// untied. Matrices are [out, in] row-major, as in torch.nn.Linear.
//
// llama2.c rotates interleaved pairs (2j, 2j+1) of each head; HF's Llama rotates the halves
// (j, j + head_size/2). q_proj and k_proj rows are therefore permuted per head, HF row
// p * head_size/2 + j <- llama2.c row 2j + p, which is the `permute` of HF's
// convert_llama_weights_to_hf.py.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/dtype.h"
#include "common/flags.h"
#include "common/model_config.h"
#include "common/safetensors.h"
#include "common/status.h"
#include "common/tensor.h"
#include "nlohmann/json.hpp"
#include "tools/staged_dir.h"

namespace loom {
namespace {

constexpr char kUsage[] = R"(Usage: loom-convert-llama2c --input MODEL.bin --output DIR [options]

Converts a llama2.c checkpoint into an HF LlamaForCausalLM directory (config.json,
generation_config.json, model.safetensors). llama2.c's tokenizer is not converted; its
conventions are kept: bos id 1, eos id 2.

  --input FILE      llama2.c checkpoint (version-0 export, fp32)
  --output DIR      directory to create (absent or empty; see --overwrite)
  --dtype T         float32 (default), bfloat16 or float16
  --overwrite       replace a non-empty output directory
  --help            this text

Exit status: 0 on success, 2 on bad flags or an unreadable checkpoint, 1 when writing fails.
)";

struct Options {
  std::string input;
  std::string output;
  DType dtype = DType::kF32;
  bool overwrite = false;
  bool help = false;
};

// The help text is kUsage above; the specs only declare the flags to the parser.
const std::vector<cli::FlagSpec>& FlagSpecs() {
  static const auto* specs = new std::vector<cli::FlagSpec>{
      {"input"}, {"output"}, {"dtype"}, {"overwrite", true}, {"help", true, "", "", 'h'}};
  return *specs;
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
  o.input = flags.String("input");
  o.output = flags.String("output");
  o.overwrite = flags.Bool("overwrite");
  if (flags.Has("dtype")) {
    absl::StatusOr<DType> dtype = ParseFloatDTypeName(flags.String("dtype"));
    if (!dtype.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--dtype must be float32, bfloat16 or float16, got '", flags.String("dtype"), "'"));
    }
    o.dtype = *dtype;
  }
  if (o.input.empty()) return absl::InvalidArgumentError("--input FILE is required");
  if (o.output.empty()) return absl::InvalidArgumentError("--output DIR is required");
  return o;
}

struct Header {
  int64_t dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len;
  bool shared_classifier;
  int64_t head_size() const { return dim / n_heads; }
  int64_t kv_dim() const { return n_kv_heads * head_size(); }
  std::string DebugString() const {
    return absl::StrCat("dim=", dim, " hidden_dim=", hidden_dim, " n_layers=", n_layers,
                        " n_heads=", n_heads, " n_kv_heads=", n_kv_heads,
                        " vocab_size=", shared_classifier ? vocab_size : -vocab_size,
                        " seq_len=", seq_len);
  }
  // The float count after the header; every field is bounded, so this cannot overflow.
  int64_t NumFloats() const {
    const int64_t L = n_layers;
    int64_t n = vocab_size * dim + L * dim + L * dim * dim + 2 * L * kv_dim() * dim +
                L * dim * dim + L * dim + 3 * L * dim * hidden_dim + dim +
                seq_len * head_size();  // the two legacy rotary tables
    if (!shared_classifier) n += vocab_size * dim;
    return n;
  }
};

absl::StatusOr<Header> CheckHeader(const std::string& path, const int32_t raw[7]) {
  Header h{raw[0], raw[1], raw[2], raw[3], raw[4], raw[5], raw[6], raw[5] > 0};
  if (h.vocab_size < 0) h.vocab_size = -h.vocab_size;
  auto bad = [&](const std::string& why) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a llama2.c checkpoint (", why,
                                                   "; header: ", h.DebugString(), ")"));
  };
  constexpr int64_t kMax = 1 << 20;  // far above any llama2.c model, keeps the size math exact
  for (int64_t v :
       {h.dim, h.hidden_dim, h.n_layers, h.n_heads, h.n_kv_heads, h.vocab_size, h.seq_len}) {
    if (v <= 0 || v > kMax) return bad("a header field is out of range");
  }
  if (h.n_layers > 4096 || h.n_heads > h.dim) return bad("a header field is out of range");
  if (h.dim % h.n_heads != 0) return bad("dim is not a multiple of n_heads");
  if (h.head_size() % 2 != 0) return bad("head size is odd");
  if (h.n_kv_heads > h.n_heads || h.n_heads % h.n_kv_heads != 0) {
    return bad("n_heads is not a multiple of n_kv_heads");
  }
  return h;
}

// Reads the whole checkpoint and checks its size against the header.
absl::StatusOr<std::pair<Header, std::vector<float>>> ReadCheckpoint(const std::string& path) {
  std::error_code ec;
  const auto file_size = std::filesystem::file_size(path, ec);
  if (ec) return absl::NotFoundError(absl::StrCat("cannot open ", path, ": ", ec.message()));
  std::ifstream f(path, std::ios::binary);
  if (!f) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  int32_t raw[7];
  if (file_size < sizeof(raw) || !f.read(reinterpret_cast<char*>(raw), sizeof(raw))) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": ", file_size, " bytes is too short for a llama2.c header"));
  }
  LOOM_ASSIGN_OR_RETURN(Header h, CheckHeader(path, raw));
  const uint64_t expected = sizeof(raw) + 4 * static_cast<uint64_t>(h.NumFloats());
  if (file_size != expected) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": file is ", file_size, " bytes but its header (", h.DebugString(), ") implies ",
        expected, file_size < expected ? " (truncated?)" : " (trailing bytes?)"));
  }
  std::vector<float> weights(static_cast<size_t>(h.NumFloats()));
  if (!f.read(reinterpret_cast<char*>(weights.data()),
              static_cast<std::streamsize>(weights.size() * 4))) {
    return absl::DataLossError(absl::StrCat(path, ": read failed"));
  }
  return std::make_pair(h, std::move(weights));
}

// Walks the float array in llama2.c order, producing HF tensors.
class Converter {
 public:
  Converter(const std::string& path, const Header& h, const std::vector<float>& w)
      : path_(path), h_(h), w_(w) {}

  absl::StatusOr<std::vector<std::pair<std::string, Tensor>>> Run() {
    const int64_t d = h_.dim, kv = h_.kv_dim(), ff = h_.hidden_dim;
    LOOM_RETURN_IF_ERROR(Take("model.embed_tokens.weight", {h_.vocab_size, d}));
    LOOM_RETURN_IF_ERROR(TakeLayers("input_layernorm.weight", {d}));
    LOOM_RETURN_IF_ERROR(TakeLayers("self_attn.q_proj.weight", {d, d}, h_.n_heads));
    LOOM_RETURN_IF_ERROR(TakeLayers("self_attn.k_proj.weight", {kv, d}, h_.n_kv_heads));
    LOOM_RETURN_IF_ERROR(TakeLayers("self_attn.v_proj.weight", {kv, d}));
    LOOM_RETURN_IF_ERROR(TakeLayers("self_attn.o_proj.weight", {d, d}));
    LOOM_RETURN_IF_ERROR(TakeLayers("post_attention_layernorm.weight", {d}));
    LOOM_RETURN_IF_ERROR(TakeLayers("mlp.gate_proj.weight", {ff, d}));  // w1
    LOOM_RETURN_IF_ERROR(TakeLayers("mlp.down_proj.weight", {d, ff}));  // w2
    LOOM_RETURN_IF_ERROR(TakeLayers("mlp.up_proj.weight", {ff, d}));    // w3
    LOOM_RETURN_IF_ERROR(Take("model.norm.weight", {d}));
    pos_ += h_.seq_len * h_.head_size();  // legacy freq_cis_real and freq_cis_imag
    if (!h_.shared_classifier) LOOM_RETURN_IF_ERROR(Take("lm_head.weight", {h_.vocab_size, d}));
    return std::move(out_);
  }

 private:
  absl::Status TakeLayers(const std::string& suffix, std::vector<int64_t> shape,
                          int64_t rotary_heads = 0) {
    for (int64_t i = 0; i < h_.n_layers; ++i) {
      LOOM_RETURN_IF_ERROR(
          Take(absl::StrCat("model.layers.", i, ".", suffix), shape, rotary_heads));
    }
    return absl::OkStatus();
  }

  // The next tensor; rows of `rotary_heads` heads are permuted from interleaved to half layout.
  absl::Status Take(const std::string& name, std::vector<int64_t> shape, int64_t rotary_heads = 0) {
    const int64_t cols = shape.back();
    const int64_t rows = shape.size() == 2 ? shape[0] : 1;
    const float* src = w_.data() + pos_;
    for (int64_t i = 0; i < rows * cols; ++i) {
      if (!std::isfinite(src[i])) {
        return absl::InvalidArgumentError(absl::StrCat(
            path_, ": non-finite value in ", name, " at element ", i, " (corrupt checkpoint?)"));
      }
    }
    Tensor t = Tensor::Empty(DType::kF32, shape);
    float* dst = t.data<float>();
    if (rotary_heads == 0) {
      std::memcpy(dst, src, static_cast<size_t>(rows * cols) * sizeof(float));
    } else {
      const int64_t head = rows / rotary_heads, half = head / 2;
      for (int64_t hh = 0; hh < rotary_heads; ++hh) {
        for (int64_t j = 0; j < half; ++j) {
          for (int64_t p = 0; p < 2; ++p) {
            std::memcpy(dst + (hh * head + p * half + j) * cols,
                        src + (hh * head + 2 * j + p) * cols, cols * sizeof(float));
          }
        }
      }
    }
    pos_ += rows * cols;
    out_.emplace_back(name, std::move(t));
    return absl::OkStatus();
  }

  const std::string& path_;
  const Header& h_;
  const std::vector<float>& w_;
  int64_t pos_ = 0;
  std::vector<std::pair<std::string, Tensor>> out_;
};

ModelConfig MakeConfig(const Header& h, DType dtype) {
  ModelConfig c;
  c.architecture = "LlamaForCausalLM";
  c.model_type = "llama";
  c.hidden_size = h.dim;
  c.intermediate_size = h.hidden_dim;
  c.num_hidden_layers = h.n_layers;
  c.num_attention_heads = h.n_heads;
  c.num_key_value_heads = h.n_kv_heads;
  c.head_dim = h.head_size();
  c.vocab_size = h.vocab_size;
  c.max_position_embeddings = h.seq_len;
  c.rms_norm_eps = 1e-5;
  c.rope_theta = 10000.0;
  c.tie_word_embeddings = h.shared_classifier;
  c.torch_dtype = dtype;
  c.bos_token_id = 1;  // llama2.c's sentencepiece conventions
  c.eos_token_ids = {2};
  return c;
}

// Returns the exit status: 2 for an unusable input, 1 for a failed write.
int Convert(const Options& o) {
  auto fail = [](const absl::Status& s, int code) {
    std::fprintf(stderr, "loom-convert-llama2c: %s\n", std::string(s.message()).c_str());
    return code;
  };
  auto checkpoint = ReadCheckpoint(o.input);
  if (!checkpoint.ok()) return fail(checkpoint.status(), 2);
  const auto& [header, weights] = *checkpoint;
  auto tensors = Converter(o.input, header, weights).Run();
  if (!tensors.ok()) return fail(tensors.status(), 2);
  if (o.dtype != DType::kF32) {
    for (auto& [name, t] : *tensors) {
      auto converted = t.To(o.dtype);
      if (!converted.ok()) return fail(converted.status(), 1);
      t = *std::move(converted);
    }
  }
  ModelConfig config = MakeConfig(header, o.dtype);
  if (absl::Status s = config.Validate(); !s.ok()) return fail(s, 2);

  auto dir = StagedDir::Create(o.output, o.overwrite);
  if (!dir.ok()) return fail(dir.status(), absl::IsAlreadyExists(dir.status()) ? 2 : 1);
  nlohmann::ordered_json generation = {{"bos_token_id", 1}, {"eos_token_id", 2}};
  absl::Status s = WriteTextFile(dir->File("config.json"), config.ToJson());
  if (s.ok()) s = WriteTextFile(dir->File("generation_config.json"), generation.dump(2) + "\n");
  if (s.ok()) {
    s = WriteSafetensors(dir->File("model.safetensors"), *tensors,
                         {{"format", "pt"}, {"source", "llama2.c"}});
  }
  if (s.ok()) s = dir->Commit();
  if (!s.ok()) return fail(s, 1);
  return 0;
}

}  // namespace
}  // namespace loom

int main(int argc, char** argv) {
  auto options = loom::ParseArgs(argc, argv);
  if (!options.ok()) {
    std::fprintf(stderr, "loom-convert-llama2c: %s\n",
                 std::string(options.status().message()).c_str());
    return 2;
  }
  if (options->help) {
    std::fputs(loom::kUsage, stdout);
    return 0;
  }
  return loom::Convert(*options);
}
