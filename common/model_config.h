// ModelConfig: the shape of a Llama-family model, read from an HF model directory's config.json
// (and generation_config.json for the eos ids).
//
// Parsing is strict: wrong JSON types, an unknown architecture, rope scaling type or layer type,
// or a non-"silu" hidden_act are errors that name the file and field, never silently ignored.
// Fields are read as HF transformers reads them, defaults included (e.g. Mistral's absent
// "sliding_window" is 4096, Qwen2/Qwen3 slide only with "use_sliding_window").
#ifndef LOOM_COMMON_MODEL_CONFIG_H_
#define LOOM_COMMON_MODEL_CONFIG_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/dtype.h"

namespace loom {

// Rotary frequency scaling, as HF's rope_scaling / rope_parameters describe it.
struct RopeScalingConfig {
  // "default", "linear", "llama3", "yarn", or "dynamic" (NTK scaling that grows with the
  // sequence: see kernels/rope.h for the rule Loom follows).
  std::string type = "default";
  double factor = 1.0;
  double low_freq_factor = 1.0;   // llama3
  double high_freq_factor = 4.0;  // llama3
  // llama3, yarn: the pre-training context; defaults to max_position_embeddings, as in HF.
  int64_t original_max_position_embeddings = 0;
  // yarn: cos/sin are scaled by attention_factor (< 0: derived from factor, mscale and
  // mscale_all_dim as HF does); the ramp between interpolation and extrapolation spans
  // beta_fast..beta_slow rotations, its ends rounded outwards when `truncate`.
  double attention_factor = -1.0;
  double beta_fast = 32.0;
  double beta_slow = 1.0;
  double mscale = 0.0;
  double mscale_all_dim = 0.0;
  bool truncate = true;
};

struct ModelConfig {
  // One of LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM.
  std::string architecture;
  std::string model_type;  // "llama", "mistral", "qwen2", "qwen3"
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;  // defaults to num_attention_heads
  int64_t head_dim = 0;             // defaults to hidden_size / num_attention_heads
  int64_t vocab_size = 0;
  int64_t max_position_embeddings = 2048;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  RopeScalingConfig rope_scaling;
  bool tie_word_embeddings = false;
  // Llama's attention_bias: biases on q, k, v and o_proj. Qwen2 always has q/k/v biases and no
  // o_proj bias, which is qkv_bias without o_bias.
  bool qkv_bias = false;
  bool o_bias = false;
  bool mlp_bias = false;  // Llama's mlp_bias: biases on gate, up and down projections
  bool qk_norm = false;         // per-head RMSNorm on q and k; true for Qwen3
  // Sliding-window attention per layer (size num_hidden_layers): 0 = the layer attends to the
  // whole context; W > 0 = a query at position p attends to positions (p - W, p], HF's mask.
  std::vector<int64_t> layer_windows;
  DType torch_dtype = DType::kF32;  // the checkpoint's declared dtype
  int64_t bos_token_id = -1;        // -1 when absent
  std::vector<int64_t> eos_token_ids;  // config.json's, then generation_config.json's, deduped

  // Parses config.json text and validates the result. `source` names the file in error messages.
  static absl::StatusOr<ModelConfig> FromJson(const std::string& json_text,
                                              const std::string& source);
  // Reads DIR/config.json and, when present, DIR/generation_config.json (whose eos ids are
  // appended after config.json's).
  static absl::StatusOr<ModelConfig> FromModelDir(const std::string& dir);

  // Checks internal consistency (positive sizes, heads divide, head_dim even, ...).
  absl::Status Validate() const;

  // The longest sequence the model serves (prompt + output) when the user sets no limit:
  // max_position_embeddings, stretched by rope scaling that extends the context (yarn:
  // original_max_position_embeddings × factor; dynamic: max_position_embeddings × factor).
  int64_t MaxContextLength() const;
  // The sliding window of layer `layer` (0 = full attention).
  int64_t Window(int64_t layer) const {
    return layer_windows.empty() ? 0 : layer_windows[static_cast<size_t>(layer)];
  }

  // Serialises back to HF config.json form (used by the model-making tools); transformers loads
  // it, and FromJson(ToJson()) gives back an equal config.
  std::string ToJson() const;
};

// OK when `next` (another model directory's config) has the serving model's architecture and
// shape, so its weights can go into the same buffers; else an error naming what differs.
absl::Status CheckSameModel(const ModelConfig& serving, const ModelConfig& next);

}  // namespace loom

#endif  // LOOM_COMMON_MODEL_CONFIG_H_
