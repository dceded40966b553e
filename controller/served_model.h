// ServedModel: what the controller takes from a model directory besides the weights — its
// config.json, the tokenizer (tokenizer.json with tokenizer_config.json), the eos ids and the
// generation defaults of generation_config.json, and the max_model_len they give. The engine
// serves one at a time and switches to another, between two steps, when a commit or reload
// puts weights from another directory into service (docs/weights.md, "Another directory").
//
// Immutable once loaded, so it is shared (std::shared_ptr<const ServedModel>) by the engine
// thread, Submit's callers and the requests in flight.
#ifndef LOOM_CONTROLLER_SERVED_MODEL_H_
#define LOOM_CONTROLLER_SERVED_MODEL_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/engine_config.h"
#include "common/model_config.h"
#include "controller/tokenizer/tokenizer.h"

namespace loom {

// From generation_config.json. Only what the v1 API can apply without changing the meaning of
// a request: its zero temperature means greedy and zero top_k means off, so the checkpoint's
// sampling defaults (temperature, top_p, top_k) are not applied — a request cannot leave them
// unset.
struct GenerationDefaults {
  int64_t max_new_tokens = 16;  // for requests whose max_tokens is 0; 16 when the file says none
};

class ServedModel {
 public:
  // Reads `dir`. `limits.max_model_len` caps the model's context length (0: no cap).
  // When `current` is given and the tokenizer files have the same contents (a 64-bit hash of
  // them), its tokenizer object is reused, so `tokenizer() == current->tokenizer()` says "the
  // same tokenizer".
  // A missing tokenizer.json is no error (prompts must then be ids); a broken one is.
  static absl::StatusOr<std::shared_ptr<const ServedModel>> Load(
      const std::string& dir, const SchedulerConfig& limits,
      const ServedModel* current = nullptr);

  // OK when this directory can replace the serving one at run time, given `ranks` — the model
  // the ranks built at start. What cannot change (the ranks' buffers, KV cache and rotary tables
  // have its shape) is an InvalidArgument naming the field: what CheckSameModel compares
  // (architecture, sizes, heads, head_dim, vocab_size, tied embeddings, biases, windows,
  // qk-norm, rope theta, rms eps), every rope scaling parameter, and a context length above the
  // ranks'. Everything else here switches (a shorter context lowers max_model_len).
  absl::Status CheckCanReplace(const ModelConfig& ranks) const;

  const std::string& dir() const { return dir_; }
  const ModelConfig& config() const { return config_; }
  // Null without a tokenizer.json.
  const std::shared_ptr<const tokenizer::Tokenizer>& tokenizer() const { return tokenizer_; }
  std::vector<int32_t> eos_token_ids() const;
  int64_t max_model_len() const { return max_model_len_; }
  const GenerationDefaults& generation_defaults() const { return generation_; }

 private:
  ServedModel() = default;

  std::string dir_;
  ModelConfig config_;
  std::shared_ptr<const tokenizer::Tokenizer> tokenizer_;
  uint64_t tokenizer_hash_ = 0;  // of tokenizer.json and tokenizer_config.json; 0 without one
  int64_t max_model_len_ = 0;
  GenerationDefaults generation_;
};

}  // namespace loom

#endif  // LOOM_CONTROLLER_SERVED_MODEL_H_
