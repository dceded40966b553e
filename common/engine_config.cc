#include "common/engine_config.h"

#include "absl/strings/str_cat.h"

namespace loom {

absl::Status EngineConfig::Validate() const {
  if (load.model.empty()) return absl::InvalidArgumentError("load.model: a model directory is required");
  if (load.load_format != "auto") {
    return absl::InvalidArgumentError(absl::StrCat("load.load_format \"", load.load_format,
                                                   "\" is not supported (supported: auto)"));
  }
  if (load.weight_dtype != DType::kF32 && load.weight_dtype != DType::kBF16) {
    return absl::InvalidArgumentError("load.weight_dtype must be float32 or bfloat16");
  }
  if (cache.block_size < 1 || cache.block_size > 1024) {
    return absl::InvalidArgumentError("cache.block_size must be in [1, 1024]");
  }
  if (cache.kv_cache_bytes < 1) return absl::InvalidArgumentError("cache.kv_cache_bytes must be > 0");
  if (scheduler.max_num_seqs < 1) return absl::InvalidArgumentError("scheduler.max_num_seqs must be >= 1");
  if (scheduler.max_num_batched_tokens < 1) {
    return absl::InvalidArgumentError("scheduler.max_num_batched_tokens must be >= 1");
  }
  if (scheduler.max_model_len < 0) return absl::InvalidArgumentError("scheduler.max_model_len must be >= 0");
  if (num_threads < 0) return absl::InvalidArgumentError("num_threads must be >= 0");
  return absl::OkStatus();
}

}  // namespace loom
