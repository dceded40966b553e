// Rank: one tensor-parallel rank's side of the controller protocol with no transport — its model,
// KV cache, weights and methods. The Worker gRPC service (worker_service.h) adapts it to the
// wire; the controller's in-process executor holds one directly, so a process of its own and a
// rank in the controller run the same code.
//
// Init joins the communicator group (through the store at world size > 1) and loads this rank's
// shard; Call runs a registered method; Step runs one step's forward pass and sampling. Bad input
// never changes state: malformed args, unknown methods, out-of-range tokens, positions or blocks
// come back as errors. Messages do not name the rank: the controller adds "rank R: ".
//
// Thread-safe. Init runs once; steps are serialised (one model and one KV cache); method calls
// run concurrently with steps and with each other.
#ifndef LOOM_WORKER_RANK_H_
#define LOOM_WORKER_RANK_H_

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "common/engine_config.h"
#include "kernels/execution_context.h"
#include "gloo/rendezvous/store.h"
#include "worker/comm/communicator.h"
#include "worker/method_registry.h"
#include "worker/model_runner.h"
#include "common/step.h"
#include "worker/weight_manager.h"
#include "worker/weight_methods.h"

namespace loom {

struct RankOptions {
  int rank = 0;
  int world_size = 1;
  std::string device = "cpu";
  int num_threads = 1;  // kernel threads unless Init says otherwise
  bool enable_test_methods = false;
  std::string hostname = "127.0.0.1";  // the address Gloo listens on and announces to peers
  // Bounds the Gloo rendezvous and every collective.
  std::chrono::milliseconds collective_timeout = std::chrono::seconds(60);
};

// What Init is told besides the engine config.
struct RankInit {
  std::string communicator;  // "gloo" or "nccl"; empty: the device's own (gloo on cpu)
  std::string store_prefix = "gloo";  // the group generation's keys in the store
  int num_threads = 0;                // 0: RankOptions::num_threads
  uint64_t weight_version = 1;        // the first load's version
};

class Rank {
 public:
  explicit Rank(const RankOptions& options);
  ~Rank();

  Rank(const Rank&) = delete;
  Rank& operator=(const Rank&) = delete;

  const RankOptions& options() const { return options_; }

  // The store the ranks meet in (Gloo rendezvous, weight update groups). Needed before Init can
  // succeed at world size > 1; Init waits a little for it, since the transport may learn it
  // after the first Init arrives.
  void SetStore(std::shared_ptr<gloo::rendezvous::Store> store);

  // Builds the model and loads the weights; returns the KV block count. Once only: a second Init
  // is FailedPrecondition; a failed one leaves the rank failed (it reports the error until it is
  // replaced).
  absl::StatusOr<int64_t> Init(const EngineConfig& config, const RankInit& init);

  // Runs a registered method (describe, check_health, the weight methods, ...). A handler that
  // throws is an Internal error, not a crash.
  absl::StatusOr<nlohmann::json> Call(const std::string& method, const nlohmann::json& args);

  // One step, checked against the model (token ids, positions), the cache (blocks) and the
  // serving weight version, then run. `compute_seconds` (optional) gets the forward pass's time.
  absl::StatusOr<StepOutput> Step(const StepInput& step, double* compute_seconds = nullptr);

  // `describe` as JSON: who this rank is and what it holds.
  nlohmann::json Describe() const;

  // "starting" (Init not done yet), "ready" or "failed", and the error when failed.
  struct Health {
    std::string state;
    std::string error;
  };
  Health health() const;

  // Notified once the controller asked this rank to stop (or its process is stopping).
  const absl::Notification& stopping() const { return stopping_; }
  void RequestStop();

 private:
  enum class State { kStarting, kInitializing, kReady, kFailed };
  static const char* StateName(State state);

  absl::Status DoInit(const EngineConfig& config, const RankInit& init, int64_t* num_kv_blocks);
  // sleep {"level": 1|2}: the weights as WeightManager::Sleep says, and the KV cache freed.
  // wake_up {"version"?}: the KV cache back (its bytes as before), then the weights (a level-2
  // sleep loads the current load config as `version`). Run between steps.
  absl::StatusOr<nlohmann::json> Sleep(const nlohmann::json& args);
  absl::StatusOr<nlohmann::json> WakeUp(const nlohmann::json& args);
  absl::Status CheckReady(const char* what) const;

  const RankOptions options_;
  MethodRegistry methods_;
  absl::Notification stopping_;
  std::once_flag stop_once_;

  mutable absl::Mutex mu_;
  State state_ ABSL_GUARDED_BY(mu_) = State::kStarting;
  std::string error_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<gloo::rendezvous::Store> store_ ABSL_GUARDED_BY(mu_);
  EngineConfig config_ ABSL_GUARDED_BY(mu_);
  nlohmann::json model_info_ ABSL_GUARDED_BY(mu_);  // describe's model fields, set by Init

  // Set once by Init (under step_mu_ and mu_) and never replaced; steps hold step_mu_ to use
  // them, describe holds mu_.
  absl::Mutex step_mu_;
  // The device everything below lives on; declared first so it goes last.
  std::unique_ptr<kernels::ExecutionContext> context_;
  std::unique_ptr<Communicator> comm_;
  // Weight traffic (broadcast loads, agreement) runs on its own group, beside the steps'.
  std::unique_ptr<Communicator> weight_comm_;
  std::unique_ptr<ModelRunner> runner_;
  std::unique_ptr<WeightManager> weights_;
  std::unique_ptr<WeightMethods> weight_methods_ ABSL_GUARDED_BY(mu_);
  std::atomic<int> num_threads_{0};  // kernel threads, set by Init
  int64_t kv_bytes_ = 0;  // the KV cache's bytes, kept across a sleep (between steps only)
};

}  // namespace loom

#endif  // LOOM_WORKER_RANK_H_
