// The serving engine with its rank in this process, for tests of the one engine loop.
#ifndef LOOM_TESTS_E2E_IN_PROCESS_H_
#define LOOM_TESTS_E2E_IN_PROCESS_H_

#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "controller/serving_engine.h"

namespace loom::testing {

// StartInProcessEngine with `config` and one kernel thread per core.
// On the device LOOM_TEST_DEVICE names ("cpu" when unset; tools/gpu_check.sh sets "cuda"), so
// the same tests check every device against the same references.
absl::StatusOr<std::unique_ptr<ServingEngine>> StartEngine(const EngineConfig& config);
std::string TestDevice();

// Submits every request at once (one continuous batch) and waits for all; completions in
// request order. The first request that fails fails the call.
absl::StatusOr<std::vector<Completion>> GenerateAll(ServingEngine& engine,
                                                    const std::vector<GenerationRequest>& requests);

}  // namespace loom::testing

#endif  // LOOM_TESTS_E2E_IN_PROCESS_H_
