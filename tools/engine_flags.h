// The flags every engine-running verb shares (model, memory, scheduling, threads), and turning
// them into an EngineConfig.
#ifndef LOOM_TOOLS_ENGINE_FLAGS_H_
#define LOOM_TOOLS_ENGINE_FLAGS_H_

#include <vector>

#include "absl/status/statusor.h"
#include "common/engine_config.h"
#include "common/flags.h"

namespace loom::cli {

std::vector<FlagSpec> EngineFlagSpecs();
absl::StatusOr<EngineConfig> EngineConfigFromFlags(const Flags& flags);

}  // namespace loom::cli

#endif  // LOOM_TOOLS_ENGINE_FLAGS_H_
