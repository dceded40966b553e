// Executor: where a ServingEngine's tensor-parallel ranks run (DESIGN.md §3.12) — worker
// processes driven over gRPC (WorkerProcesses), or a rank inside this process
// (InProcessExecutor, for `loom generate --model`, benchmarks and tests). The engine's loop,
// scheduler, tokenizer and weight versions are the same over either.
//
// Errors name the rank ("rank 1: ..."). Thread-safe: calls may run concurrently with each other
// and with Step; Steps are serialised by the caller (the engine thread).
#ifndef LOOM_CONTROLLER_EXECUTOR_H_
#define LOOM_CONTROLLER_EXECUTOR_H_

#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/engine_config.h"
#include "common/step.h"

namespace loom {

struct RankResult {
  int rank = 0;
  nlohmann::json result;
};

struct GroupInitResult {
  int64_t num_kv_blocks = 0;             // minimum over ranks
  std::vector<nlohmann::json> describe;  // per rank, what `describe` returned after Init
};

// Where one rank runs, and whether it still does.
struct RankProcess {
  int64_t pid = 0;
  std::string device;
  std::string address;  // its Worker service, "" for a rank in this process
  absl::Status status;  // OK while it runs; Unavailable saying how it ended
};

class Executor {
 public:
  virtual ~Executor() = default;

  virtual int world_size() const = 0;

  // Initialises every rank with `config` (each builds its model and loads its weights as
  // `weight_version`); num_threads 0 keeps each rank's own budget. Once per start or Restart.
  virtual absl::StatusOr<GroupInitResult> Init(const EngineConfig& config, int num_threads,
                                               uint64_t weight_version) = 0;

  // Ends every rank and starts the group again: fresh processes and communicators, not yet
  // initialised (Init next). Unimplemented where the ranks cannot be restarted (a rank in this
  // process, workers an outside launcher started).
  virtual absl::Status Restart() {
    return absl::UnimplementedError("this executor cannot restart its ranks");
  }

  // Runs `method` with `args_json` ("" = null) on `ranks` (empty = all) within `timeout`;
  // results in the order of `ranks`. Any failing rank fails the call, naming it.
  virtual absl::StatusOr<std::vector<RankResult>> CollectiveCall(
      const std::string& method, const std::string& args_json, std::chrono::milliseconds timeout,
      const std::vector<int>& ranks = {}) = 0;

  // Runs one step on every rank; rank 0's sampled tokens.
  virtual absl::StatusOr<StepOutput> Step(const StepInput& step) = 0;

  // OK while every rank runs and steps can flow; otherwise Unavailable naming the rank.
  virtual absl::Status Health() const = 0;
  virtual std::vector<RankProcess> Processes() const = 0;
  // The slowest rank's forward-pass time of the last successful step.
  virtual double last_step_compute_seconds() const = 0;
  // Where outside workers reach the controller and the session they join ("" when none).
  virtual std::string controller_address() const = 0;
  virtual std::string session_id() const = 0;

  // Ends the ranks; calls and steps fail with Unavailable from then on. Idempotent.
  virtual void Stop() = 0;
};

}  // namespace loom

#endif  // LOOM_CONTROLLER_EXECUTOR_H_
