// The in-memory type of a model's matmul and embedding weights.
#ifndef LOOM_WORKER_LOADER_WEIGHT_DTYPE_H_
#define LOOM_WORKER_LOADER_WEIGHT_DTYPE_H_

#include "absl/status/statusor.h"
#include "common/dtype.h"
#include "common/engine_config.h"
#include "common/model_config.h"

namespace loom {

// What `load.weight_dtype` names, or for "auto" (unset) the checkpoint's own type, so a user's
// weights are never silently rounded: the stored type of model.embed_tokens.weight when the load
// reads the model's safetensors (load_format "auto"), else config.json's dtype / torch_dtype.
// An unreadable checkpoint is an error only where the load itself would fail on it.
absl::StatusOr<DType> ResolveWeightDType(const LoadConfig& load, const ModelConfig& model);

}  // namespace loom

#endif  // LOOM_WORKER_LOADER_WEIGHT_DTYPE_H_
