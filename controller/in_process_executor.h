// InProcessExecutor: the Executor whose one rank (TP = 1) runs inside this process — the same
// Rank a worker process serves, called directly instead of over gRPC. It is how `loom generate
// --model`, `loom bench` and the reference tests run the serving engine without spawning
// workers. Tensor parallelism needs worker processes (WorkerProcesses).
//
// Calls run on the caller's thread; a call's timeout is not enforced (the rank cannot be
// abandoned mid-call as a process can). Built into its own library (loom_in_process), so the
// controller alone does not carry the model code. Thread-safe.
#ifndef LOOM_CONTROLLER_IN_PROCESS_EXECUTOR_H_
#define LOOM_CONTROLLER_IN_PROCESS_EXECUTOR_H_

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "controller/executor.h"
#include "controller/serving_engine.h"
#include "worker/rank.h"

namespace loom {

struct InProcessOptions {
  int num_threads = 0;  // kernel threads; 0 = all cores
  std::string device = "cpu";  // "cpu", "cuda" or "cuda:K" (common/device.h)
  bool enable_test_methods = false;
};

class InProcessExecutor final : public Executor {
 public:
  explicit InProcessExecutor(const InProcessOptions& options);

  int world_size() const override { return 1; }
  absl::StatusOr<GroupInitResult> Init(const EngineConfig& config, int num_threads,
                                       uint64_t weight_version) override;
  absl::StatusOr<std::vector<RankResult>> CollectiveCall(
      const std::string& method, const std::string& args_json, std::chrono::milliseconds timeout,
      const std::vector<int>& ranks = {}) override;
  absl::StatusOr<StepOutput> Step(const StepInput& step) override;
  absl::Status Health() const override;
  std::vector<RankProcess> Processes() const override;
  double last_step_compute_seconds() const override { return last_compute_seconds_.load(); }
  std::string controller_address() const override { return ""; }
  std::string session_id() const override { return ""; }
  void Stop() override;

 private:
  Rank rank_;
  std::atomic<bool> stopped_{false};
  std::atomic<double> last_compute_seconds_{0};
};

// A ServingEngine over an InProcessExecutor: the one engine loop with its rank in this process.
absl::StatusOr<std::unique_ptr<ServingEngine>> StartInProcessEngine(
    const ServingEngineOptions& options, const InProcessOptions& in_process = {});

}  // namespace loom

#endif  // LOOM_CONTROLLER_IN_PROCESS_EXECUTOR_H_
