// update_config's core: applying an RFC 7386 JSON merge-patch to a running engine's EngineConfig.
//
// The patch uses the keys of engine_config_json.h, e.g.
//   {"load_config": {"model": "/models/next", "load_format": "dummy"}}
// and is applied to EngineConfigToJson(current); the result is parsed strictly and validated
// whole. Rejected, with nothing applied (the caller keeps `current`):
//   - text that is not JSON, or a patch that is not a JSON object;
//   - a null value anywhere (a merge-patch null removes a setting; settings cannot be removed),
//     naming its key;
//   - unknown keys (listing the known ones) and wrong types (naming the key path);
//   - a change to a setting that cannot change at run time (naming it and listing
//     RuntimeConfigKeys()); writing such a setting's current value is not a change and is fine;
//   - a result EngineConfig::Validate rejects.
// Pure function of its inputs; thread-compatible.
#ifndef LOOM_COMMON_ENGINE_CONFIG_PATCH_H_
#define LOOM_COMMON_ENGINE_CONFIG_PATCH_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/engine_config.h"

namespace loom {

// The key paths a patch may change at run time, in a fixed order:
// load_config.model, load_config.load_format, load_config.strategy, load_config.dummy_seed,
// load_config.dummy_range.
std::vector<std::string> RuntimeConfigKeys();

// The config after `patch_json`, or InvalidArgument saying why not.
absl::StatusOr<EngineConfig> ApplyConfigPatch(const EngineConfig& current,
                                              const std::string& patch_json);

}  // namespace loom

#endif  // LOOM_COMMON_ENGINE_CONFIG_PATCH_H_
