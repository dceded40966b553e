// The CPU communicator: Gloo collectives over TCP among the ranks of one tensor-parallel group.
//
// Ranks meet through a rendezvous key-value store: each publishes its listening address under a
// key and reads everyone else's, then Gloo connects a full mesh of TCP pairs. Any
// gloo::rendezvous::Store works: a FileStore on a shared directory (tests, one machine) today,
// and the small store the controller serves (DESIGN §3.9) when it exists, without changing this
// class. Gloo reports errors by throwing; every exception stops here and becomes a Status that
// names the operation and the rank.
//
// Thread-compatible in practice but serialised by a mutex: Gloo needs one collective at a time
// per context. After a failed collective the context is closed and every later call fails with
// FailedPrecondition (peers may be mid-operation; the group has to be rebuilt).
#ifndef LOOM_WORKER_COMM_GLOO_COMMUNICATOR_H_
#define LOOM_WORKER_COMM_GLOO_COMMUNICATOR_H_

#include <chrono>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "worker/comm/communicator.h"

namespace gloo {
class Context;
namespace rendezvous {
class Store;
}  // namespace rendezvous
}  // namespace gloo

namespace loom {

struct GlooOptions {
  int64_t rank = 0;
  int64_t world_size = 1;
  // Where the ranks meet. Required. Shared by the ranks of the group (the same directory for a
  // FileStore, the same server for a network store).
  std::shared_ptr<gloo::rendezvous::Store> store;
  // Namespaces this group's keys in the store, so one store serves several groups or several
  // generations of one group (a rebuilt group must use a fresh prefix: keys are never deleted).
  std::string prefix = "loom";
  // The address this rank listens on and announces to its peers. Loopback serves one machine.
  std::string hostname = "127.0.0.1";
  // Bounds the rendezvous (waiting for every peer's address) and each collective.
  std::chrono::milliseconds timeout = std::chrono::seconds(30);
};

// A FileStore over `directory` (created if missing). Every rank of a group must name the same
// directory; use a fresh one (or a fresh GlooOptions::prefix) per group.
absl::StatusOr<std::shared_ptr<gloo::rendezvous::Store>> MakeFileStore(
    const std::string& directory);

class GlooCommunicator : public Communicator {
 public:
  // Connects to every other rank; blocks until all world_size ranks have called Create with the
  // same store and prefix and every pair is connected, or the timeout passes (Unavailable).
  static absl::StatusOr<std::unique_ptr<GlooCommunicator>> Create(const GlooOptions& options);
  ~GlooCommunicator() override;

  int64_t rank() const override { return rank_; }
  int64_t world_size() const override { return world_size_; }
  absl::Status AllReduceSum(Tensor& tensor) override;
  absl::Status AllGatherLastDim(const Tensor& in, Tensor& out) override;
  absl::Status AllGather(const Tensor& in, Tensor& out) override;
  absl::Status Broadcast(Tensor& tensor, int64_t root) override;
  // Point-to-point sends from the root (Gloo's own scatter needs equal sizes). A receiver whose
  // `out` does not hold its part's bytes fails with InvalidArgument and the group stays usable.
  absl::Status Scatter(absl::Span<const Tensor> parts, Tensor& out, int64_t root) override;
  absl::Status Barrier() override;

 private:
  GlooCommunicator(int64_t rank, int64_t world_size, std::shared_ptr<gloo::Context> context);
  // Runs `op` (which may throw Gloo's exceptions) under the mutex; turns exceptions into a
  // Status naming `name` and marks the communicator broken.
  template <typename Op>
  absl::Status Run(const char* name, Op&& op);

  const int64_t rank_, world_size_;
  absl::Mutex mu_;
  std::shared_ptr<gloo::Context> context_ ABSL_GUARDED_BY(mu_);
  absl::Status broken_ ABSL_GUARDED_BY(mu_);  // OK until a collective fails
};

}  // namespace loom

#endif  // LOOM_WORKER_COMM_GLOO_COMMUNICATOR_H_
