// EngineConfig as JSON: how the controller hands the whole config to every worker (InitRequest),
// and the shape `update_config` merge-patches take (common/engine_config_patch.h).
//
// The JSON mirrors the struct, one object per sub-config:
//   {"load_config": {"model", "load_format", "strategy", "dummy_seed", "dummy_range",
//                    "weight_dtype", "stage_share"},
//    "cache_config": {"block_size", "kv_cache_bytes"},
//    "scheduler_config": {"max_num_seqs", "max_num_batched_tokens", "max_model_len"},
//    "num_threads"}
// Strings are strings; dummy_seed is an unsigned integer, dummy_range and stage_share any
// numbers, the rest integers. Parsing is strict: unknown keys, wrong types and nulls are errors that name the key
// path ("load_config.dummy_range: expected a number, got string \"big\""; the field readers are
// common/json_fields.h's); missing keys keep their defaults.
// The result is not validated (call EngineConfig::Validate). EngineConfigToJson writes every key,
// so EngineConfigFromJson(EngineConfigToJson(c)) == c for every field.
#ifndef LOOM_COMMON_ENGINE_CONFIG_JSON_H_
#define LOOM_COMMON_ENGINE_CONFIG_JSON_H_

#include <string>

#include "absl/status/statusor.h"
#include "common/engine_config.h"

namespace loom {

std::string EngineConfigToJson(const EngineConfig& config);
absl::StatusOr<EngineConfig> EngineConfigFromJson(const std::string& json_text);

}  // namespace loom

#endif  // LOOM_COMMON_ENGINE_CONFIG_JSON_H_
