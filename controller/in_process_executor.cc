#include "controller/in_process_executor.h"

#include <unistd.h>

#include <thread>

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace loom {
namespace {

RankOptions ToRankOptions(const InProcessOptions& options) {
  RankOptions r;
  r.num_threads = options.num_threads > 0
                      ? options.num_threads
                      : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  r.enable_test_methods = options.enable_test_methods;
  r.device = options.device;
  return r;
}

// Errors carry the rank, as a worker group's do.
absl::Status Named(const absl::Status& status) {
  if (status.ok()) return status;
  return absl::Status(status.code(), absl::StrCat("rank 0: ", status.message()));
}

absl::Status Stopped() { return absl::UnavailableError("the engine is stopping"); }

}  // namespace

InProcessExecutor::InProcessExecutor(const InProcessOptions& options)
    : rank_(ToRankOptions(options)) {}

absl::StatusOr<GroupInitResult> InProcessExecutor::Init(const EngineConfig& config,
                                                        int num_threads,
                                                        uint64_t weight_version) {
  if (stopped_) return Stopped();
  RankInit init;
  init.num_threads = num_threads;
  init.weight_version = weight_version;
  absl::StatusOr<int64_t> blocks = rank_.Init(config, init);
  if (!blocks.ok()) return Named(blocks.status());
  GroupInitResult result;
  result.num_kv_blocks = *blocks;
  result.describe.push_back(rank_.Describe());
  return result;
}

absl::StatusOr<std::vector<RankResult>> InProcessExecutor::CollectiveCall(
    const std::string& method, const std::string& args_json, std::chrono::milliseconds timeout,
    const std::vector<int>& ranks) {
  if (stopped_) return Stopped();
  if (timeout <= std::chrono::milliseconds(0)) {
    return absl::InvalidArgumentError("a collective call needs a positive timeout");
  }
  for (int r : ranks) {
    if (r != 0) return absl::InvalidArgumentError(absl::StrCat("rank ", r, " outside [0, 1)"));
  }
  nlohmann::json args;
  if (!args_json.empty()) {
    args = nlohmann::json::parse(args_json, nullptr, /*allow_exceptions=*/false);
    if (args.is_discarded()) {
      return absl::InvalidArgumentError(
          absl::StrCat("method ", method, ": args are not valid JSON: ", args_json));
    }
  }
  absl::StatusOr<nlohmann::json> result = rank_.Call(method, args);
  if (!result.ok()) return Named(result.status());
  return std::vector<RankResult>{{0, std::move(*result)}};
}

absl::StatusOr<StepOutput> InProcessExecutor::Step(const StepInput& step) {
  if (stopped_) return Stopped();
  double seconds = 0;
  absl::StatusOr<StepOutput> out = rank_.Step(step, &seconds);
  if (!out.ok()) return Named(out.status());
  last_compute_seconds_ = seconds;
  return out;
}

absl::Status InProcessExecutor::Health() const {
  if (stopped_) return Stopped();
  const Rank::Health health = rank_.health();
  if (health.state == "failed") return absl::UnavailableError(absl::StrCat("rank 0: ", health.error));
  return absl::OkStatus();
}

std::vector<RankProcess> InProcessExecutor::Processes() const {
  RankProcess p;
  p.pid = getpid();
  p.device = rank_.options().device;
  p.status = Health();
  return {p};
}

void InProcessExecutor::Stop() {
  stopped_ = true;
  rank_.RequestStop();
}

absl::StatusOr<std::unique_ptr<ServingEngine>> StartInProcessEngine(
    const ServingEngineOptions& options, const InProcessOptions& in_process) {
  if (options.supervisor.world_size > 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor parallelism (", options.supervisor.world_size,
                     " ranks) needs worker processes: use loom serve --tp N"));
  }
  return ServingEngine::Start(options, std::make_unique<InProcessExecutor>(in_process));
}

}  // namespace loom
