// WorkerProcesses: the Executor of a cluster — the Supervisor's worker processes (one per
// tensor-parallel rank, spawned here or started by an outside launcher) and the WorkerGroup that
// drives them over gRPC.
//
// A rank whose process ends makes Health (and the step in flight) fail with Unavailable naming
// it and how it ended. Stop closes the step streams before the workers are asked to exit (a
// worker shuts down only once its stream is closed). Thread-safe.
#ifndef LOOM_CONTROLLER_WORKER_PROCESSES_H_
#define LOOM_CONTROLLER_WORKER_PROCESSES_H_

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "controller/executor.h"
#include "controller/supervisor.h"
#include "controller/worker_group.h"

namespace loom {

class WorkerProcesses final : public Executor {
 public:
  // Starts (or, with an external launcher, waits for) the workers and connects to them. Must be
  // called from a thread that lives as long as the workers (they die with it, see Supervisor).
  static absl::StatusOr<std::unique_ptr<WorkerProcesses>> Start(
      const SupervisorOptions& options, std::chrono::milliseconds init_timeout);
  ~WorkerProcesses() override;  // Stop()


  int world_size() const override { return options_.world_size; }
  absl::StatusOr<GroupInitResult> Init(const EngineConfig& config, int num_threads,
                                       uint64_t weight_version) override;
  // Stops every worker and starts the group again. Local launcher: kills every rank and spawns
  // it anew. External launcher with a fixed controller port: asks every live worker to shut down
  // (it cannot signal remote processes), listens again on the same address and waits up to the
  // register timeout for the launcher to bring every rank back (its restart loop, e.g.
  // tools/run_worker.sh, restarts a worker that exited or was killed; docs/deploy.md).
  // Unimplemented for external workers on an ephemeral port (port 0), which a restarted worker
  // could not find again.
  absl::Status Restart() override;
  absl::StatusOr<std::vector<RankResult>> CollectiveCall(
      const std::string& method, const std::string& args_json, std::chrono::milliseconds timeout,
      const std::vector<int>& ranks = {}) override;
  absl::StatusOr<StepOutput> Step(const StepInput& step) override;
  absl::Status Health() const override;
  std::vector<RankProcess> Processes() const override;
  double last_step_compute_seconds() const override;
  std::string controller_address() const override;
  std::string session_id() const override;
  void Stop() override;

 private:
  WorkerProcesses(const SupervisorOptions& options, std::chrono::milliseconds init_timeout)
      : options_(options), init_timeout_(init_timeout) {}
  // Spawns (or waits for) the workers and connects to them (group_mu_ held for writing).
  absl::Status Launch() ABSL_EXCLUSIVE_LOCKS_REQUIRED(group_mu_);

  const SupervisorOptions options_;
  const std::chrono::milliseconds init_timeout_;
  // Both replaced by Restart; the group is reset by Stop before the workers are asked to exit.
  mutable absl::Mutex group_mu_;
  std::unique_ptr<Supervisor> supervisor_ ABSL_GUARDED_BY(group_mu_);
  std::unique_ptr<WorkerGroup> group_ ABSL_GUARDED_BY(group_mu_);
};

}  // namespace loom

#endif  // LOOM_CONTROLLER_WORKER_PROCESSES_H_
