#include "common/engine_config.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace loom {
namespace {

template <size_t N>
absl::Status CheckOneOf(const std::string& value, const std::array<const char*, N>& allowed,
                        const char* key) {
  if (std::find(allowed.begin(), allowed.end(), value) != allowed.end()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      key, " \"", value, "\" is not supported (supported: ", absl::StrJoin(allowed, ", "), ")"));
}

}  // namespace

absl::Status EngineConfig::Validate() const {
  if (load.model.empty()) {
    return absl::InvalidArgumentError("load_config.model: a model directory is required");
  }
  if (absl::Status s = CheckOneOf(load.load_format, kLoadFormats, "load_config.load_format");
      !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckOneOf(load.strategy, kLoadStrategies, "load_config.strategy");
      !s.ok()) {
    return s;
  }
  if (!std::isfinite(load.dummy_range) || !(load.dummy_range > 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("load_config.dummy_range must be finite and > 0, got ", load.dummy_range));
  }
  if (!std::isfinite(load.stage_share) || !(load.stage_share > 0) || load.stage_share > 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("load_config.stage_share must be in (0, 1], got ", load.stage_share));
  }
  if (load.weight_dtype.has_value() && !IsFloat(*load.weight_dtype)) {
    return absl::InvalidArgumentError(
        "load_config.weight_dtype must be auto, float32, bfloat16 or float16");
  }
  if (cache.block_size < 1 || cache.block_size > 1024) {
    return absl::InvalidArgumentError("cache_config.block_size must be in [1, 1024]");
  }
  if (cache.kv_cache_bytes < 1) {
    return absl::InvalidArgumentError("cache_config.kv_cache_bytes must be > 0");
  }
  if (!(cache.gpu_memory_utilization > 0 && cache.gpu_memory_utilization <= 1)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cache_config.gpu_memory_utilization must be in (0, 1], got ",
        cache.gpu_memory_utilization));
  }
  if (cache.staging_memory != "auto" && cache.staging_memory != "none") {
    return absl::InvalidArgumentError(absl::StrCat("cache_config.staging_memory must be auto or none, got \"",
                                                   cache.staging_memory, "\""));
  }
  if (scheduler.max_num_seqs < 1) {
    return absl::InvalidArgumentError("scheduler_config.max_num_seqs must be >= 1");
  }
  if (scheduler.max_num_batched_tokens < 1) {
    return absl::InvalidArgumentError("scheduler_config.max_num_batched_tokens must be >= 1");
  }
  if (scheduler.max_model_len < 0) {
    return absl::InvalidArgumentError("scheduler_config.max_model_len must be >= 0");
  }
  if (num_threads < 0) return absl::InvalidArgumentError("num_threads must be >= 0");
  return absl::OkStatus();
}

}  // namespace loom
