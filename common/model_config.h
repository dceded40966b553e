// ModelConfig: the shape of a Llama-family model, read from an HF model directory's config.json
// (and generation_config.json for the eos ids).
//
// Parsing is strict: wrong JSON types, an unknown architecture or rope scaling type, a
// non-"silu" hidden_act or mlp_bias=true are errors that name the file and field, never silently
// ignored. Not modelled: sliding-window attention (Mistral's "sliding_window" is read as full
// attention).
#ifndef LOOM_COMMON_MODEL_CONFIG_H_
#define LOOM_COMMON_MODEL_CONFIG_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/dtype.h"

namespace loom {

struct RopeScalingConfig {
  std::string type = "default";  // "default", "linear", "llama3"
  double factor = 1.0;
  double low_freq_factor = 1.0;   // llama3
  double high_freq_factor = 4.0;  // llama3
  int64_t original_max_position_embeddings = 8192;  // llama3
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
  bool attention_bias = false;  // q/k/v biases; always true for Qwen2
  bool qk_norm = false;         // per-head RMSNorm on q and k; true for Qwen3
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

  // Serialises back to HF config.json form (used by the model-making tools); transformers loads
  // it, and FromJson(ToJson()) gives back an equal config.
  std::string ToJson() const;
};

}  // namespace loom

#endif  // LOOM_COMMON_MODEL_CONFIG_H_
