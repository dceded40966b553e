#include "worker/loader/weight_dtype.h"

#include "common/safetensors.h"

namespace loom {

absl::StatusOr<DType> ResolveWeightDType(const LoadConfig& load, const ModelConfig& model) {
  if (load.weight_dtype.has_value()) return *load.weight_dtype;
  if (load.load_format == "auto") {
    // Only the headers are read (the files are mapped, not paged in).
    absl::StatusOr<std::unique_ptr<Checkpoint>> checkpoint = Checkpoint::Open(load.model);
    if (checkpoint.ok()) {
      if (const SafetensorsFile* file = (*checkpoint)->FileFor("model.embed_tokens.weight")) {
        const DType stored = file->Find("model.embed_tokens.weight")->dtype;
        if (IsFloat(stored)) return stored;
      }
    }
    // A missing or broken checkpoint fails the load itself, with its own message.
  }
  return model.torch_dtype;
}

}  // namespace loom
