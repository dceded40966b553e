// EngineConfig as JSON: how the controller hands the whole config to every worker (InitRequest),
// and the shape `update_config` patches will take.
//
// The JSON mirrors the struct: {"load": {"model", "load_format", "weight_dtype"}, "cache":
// {"block_size", "kv_cache_bytes"}, "scheduler": {"max_num_seqs", "max_num_batched_tokens",
// "max_model_len"}, "num_threads"}. Parsing is strict: unknown keys and wrong types are errors
// that name the key; missing keys keep their defaults. The result is not validated (call
// EngineConfig::Validate).
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
