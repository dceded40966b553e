// WorkerGroup: the controller's handle on the worker processes of one tensor-parallel group, one
// gRPC channel per rank (DESIGN.md §1).
//
// * Init initialises every rank at once (they meet in the controller's store, so they must all
//   be running Init together) and returns the KV block count the controller may use (the
//   minimum over ranks).
// * CollectiveCall fans one method out to all ranks (or a subset) concurrently under a deadline
//   that is always set, and gathers per-rank results. Any failing rank fails the call with an
//   error naming it and its message; ranks that miss the deadline make it DEADLINE_EXCEEDED
//   naming them. Calls are independent RPCs: the group keeps working after a failed one.
// * Step sends one step to every rank on a long-lived bidirectional stream per rank (opened once,
//   at Connect) and returns rank 0's sampled tokens. A rank whose stream or process ends makes
//   the step fail with UNAVAILABLE naming it; from then on the group is broken (every Step fails
//   with that error) and has to be restarted. A step every rank rejects (bad tokens, blocks)
//   fails with the ranks' error and leaves the group usable.
//
// Thread-safe: calls may run concurrently with each other and with Step; Steps are serialised.
#ifndef LOOM_CONTROLLER_WORKER_GROUP_H_
#define LOOM_CONTROLLER_WORKER_GROUP_H_

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/engine_config.h"
#include "controller/executor.h"
#include "loom/v1/worker.grpc.pb.h"
#include "common/step.h"

namespace loom {

struct WorkerGroupOptions {
  std::vector<std::string> addresses;  // each rank's Worker service, in rank order
  std::chrono::milliseconds init_timeout = std::chrono::minutes(5);
  // A step that takes longer breaks the group (the streams are out of step).
  std::chrono::milliseconds step_timeout = std::chrono::minutes(2);
  // How a rank's process is doing, e.g. Supervisor::RankStatus; optional. Lets a failure name
  // the rank that died rather than the ranks whose collectives broke because of it.
  std::function<absl::Status(int rank)> rank_status;
  // Carried by every call to the workers (proto/cluster_channel.h); empty: none.
  std::string cluster_secret;
};

class WorkerGroup {
 public:
  static absl::StatusOr<std::unique_ptr<WorkerGroup>> Connect(const WorkerGroupOptions& options);
  ~WorkerGroup();

  WorkerGroup(const WorkerGroup&) = delete;
  WorkerGroup& operator=(const WorkerGroup&) = delete;

  int world_size() const { return static_cast<int>(ranks_.size()); }

  // Initialises every rank with `config`; num_threads 0 keeps each worker's own budget.
  absl::StatusOr<GroupInitResult> Init(const EngineConfig& config, int num_threads = 0,
                                       uint64_t weight_version = 1);

  // Runs `method` with `args_json` ("" = null) on `ranks` (empty = all) with a deadline of
  // `timeout` (a non-positive one is an InvalidArgument error). Results in the order of `ranks`.
  absl::StatusOr<std::vector<RankResult>> CollectiveCall(const std::string& method,
                                                         const std::string& args_json,
                                                         std::chrono::milliseconds timeout,
                                                         const std::vector<int>& ranks = {});

  // Runs one step on every rank; rank 0's sampled tokens.
  absl::StatusOr<StepOutput> Step(const StepInput& step);

  // OK, or the error that broke the step streams.
  absl::Status broken() const;
  // The slowest rank's forward-pass time of the last successful step.
  double last_step_compute_seconds() const;

 private:
  struct Rank {
    std::shared_ptr<grpc::Channel> channel;
    std::unique_ptr<loom::v1::Worker::Stub> stub;
    std::unique_ptr<grpc::ClientContext> stream_context;
    std::unique_ptr<grpc::ClientReaderWriter<loom::v1::StepRequest, loom::v1::StepResponse>> stream;
    std::thread reader;
  };
  struct Inbox {  // what rank's reader thread has seen; guarded by mu_
    std::deque<loom::v1::StepResponse> responses;
    bool closed = false;
  };

  explicit WorkerGroup(const WorkerGroupOptions& options) : options_(options) {}
  void ReadResponses(int rank);
  // "rank R <how it ended>" when the rank's process is known to be gone, else "".
  std::string DeadRankReason(int rank) const;
  // Breaks the group with an error naming the dead, closed, failing and late ranks.
  absl::Status StepFailure(const std::vector<int>& closed, const std::vector<int>& late,
                           const std::vector<std::optional<loom::v1::StepResponse>>& responses,
                           uint64_t step_id);

  const WorkerGroupOptions options_;
  std::vector<Rank> ranks_;
  int64_t init_generation_ = 0;  // guarded by init_mu_
  absl::Mutex init_mu_;

  absl::Mutex step_mu_;  // one Step at a time; only Step writes to the streams
  uint64_t next_step_id_ ABSL_GUARDED_BY(step_mu_) = 0;

  mutable absl::Mutex mu_;
  absl::CondVar changed_;
  std::vector<Inbox> inboxes_ ABSL_GUARDED_BY(mu_);
  absl::Status broken_ ABSL_GUARDED_BY(mu_);
  double last_compute_seconds_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace loom

#endif  // LOOM_CONTROLLER_WORKER_GROUP_H_
