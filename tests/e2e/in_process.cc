#include "tests/e2e/in_process.h"

#include <cstdlib>

#include "common/status.h"
#include "controller/in_process_executor.h"

namespace loom::testing {

absl::StatusOr<std::unique_ptr<ServingEngine>> StartEngine(const EngineConfig& config) {
  ServingEngineOptions options;
  options.config = config;
  InProcessOptions in_process;
  in_process.device = TestDevice();
  return StartInProcessEngine(options, in_process);
}

std::string TestDevice() {
  const char* device = std::getenv("LOOM_TEST_DEVICE");
  return device != nullptr && *device != '\0' ? device : "cpu";
}

absl::StatusOr<std::vector<Completion>> GenerateAll(
    ServingEngine& engine, const std::vector<GenerationRequest>& requests) {
  std::vector<std::shared_ptr<RequestStream>> streams;
  for (const GenerationRequest& r : requests) {
    ServingRequest s;
    s.generation = r;
    LOOM_ASSIGN_OR_RETURN(std::shared_ptr<RequestStream> stream, engine.Submit(std::move(s)));
    streams.push_back(std::move(stream));
  }
  std::vector<Completion> out;
  for (const auto& stream : streams) {
    LOOM_ASSIGN_OR_RETURN(Completion c, WaitForCompletion(*stream));
    out.push_back(std::move(c));
  }
  return out;
}

}  // namespace loom::testing
