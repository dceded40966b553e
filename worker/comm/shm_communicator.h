// The CPU communicator for ranks on one machine: collectives through a shared-memory segment,
// synchronised by counters in that segment, with no socket, no system call and no thread hop on
// the way when the ranks arrive together.
//
// Why: a decode step of a tensor-parallel model runs two all-reduces per layer (57 for
// Qwen3-0.6B's 28 layers, with the logits' gather) on a few kilobytes each, so a collective's
// latency is the step's overhead. Over Gloo's TCP pairs, even on loopback, each one passes
// through sockets, Gloo's device thread and condition variables: about 0.7 ms here, which made
// TP=2 on two cores 2.3× slower per token than TP=1 (docs/cpu_performance.md).
//
// How: the segment holds, per rank, two slots of kSlotBytes (collectives alternate between the
// two, so a rank may write the next one while a slower peer still reads this one) and an
// arrival counter. A collective moves its data in chunks of at most a slot; for each chunk
// every rank copies its part into its slot, publishes its counter, waits until every peer's
// counter has reached the same value, and reads what it needs from the peers' slots. A waiting
// rank spins briefly, then yields, then sleeps on a futex that the last arriving rank wakes, so
// ranks that share cores do not starve each other. Sums are taken in rank order from the same
// bytes, so every rank ends with bit-identical results.
//
// Joining: ranks meet through the same rendezvous store as Gloo. They use shared memory only
// when every rank reports this machine's boot id and every rank could map the segment that rank
// 0 created; otherwise Create answers nullptr on every rank alike and the caller uses Gloo
// (ranks on several machines, or containers without a shared /dev/shm). The segment's name is
// unlinked as soon as every rank has mapped it, so a crash leaves nothing behind.
//
// Failures: a collective waits at most `timeout` for its peers, and fails at once when a peer's
// process is gone (checked while sleeping). A failed collective leaves the communicator unusable,
// as Gloo's does: later calls fail with FailedPrecondition.
#ifndef LOOM_WORKER_COMM_SHM_COMMUNICATOR_H_
#define LOOM_WORKER_COMM_SHM_COMMUNICATOR_H_

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "worker/comm/communicator.h"

namespace gloo::rendezvous {
class Store;
}  // namespace gloo::rendezvous

namespace loom {

struct ShmOptions {
  int64_t rank = 0;
  int64_t world_size = 1;
  // Where the ranks meet (required), and the group's namespace in it (a fresh one per group).
  std::shared_ptr<gloo::rendezvous::Store> store;
  std::string prefix = "loom";
  // Bounds the rendezvous and each collective's wait for its peers.
  std::chrono::milliseconds timeout = std::chrono::seconds(30);
};

class ShmCommunicator : public Communicator {
 public:
  // Bytes each rank's slot holds: larger collectives move in chunks of this size.
  static constexpr int64_t kSlotBytes = int64_t{4} << 20;

  // Blocks until every rank of the group has called Create with the same store and prefix.
  // A communicator when all of them can share memory; nullptr on every rank when any cannot
  // (the caller then falls back to Gloo); an error for bad options or a rendezvous that timed
  // out.
  static absl::StatusOr<std::unique_ptr<ShmCommunicator>> Create(const ShmOptions& options);
  ~ShmCommunicator() override;

  int64_t rank() const override { return rank_; }
  int64_t world_size() const override { return world_size_; }
  absl::Status AllReduceSum(Tensor& tensor) override;
  absl::Status AllGatherLastDim(const Tensor& in, Tensor& out) override;
  absl::Status AllGather(const Tensor& in, Tensor& out) override;
  absl::Status Broadcast(Tensor& tensor, int64_t root) override;
  // The root announces every part's size first; a receiver whose `out` does not hold its part's
  // bytes fails with InvalidArgument and the group stays usable.
  absl::Status Scatter(absl::Span<const Tensor> parts, Tensor& out, int64_t root) override;
  absl::Status Barrier() override;

  // The mapped layout: a header of per-rank counters, then the slots (shm_communicator.cc).
  struct Segment;

 private:
  ShmCommunicator(int64_t rank, int64_t world_size, std::chrono::milliseconds timeout,
                  void* base, size_t bytes);

  // The slot of `rank` in round `round` (rounds alternate between each rank's two slots).
  uint8_t* Slot(uint32_t round, int64_t rank) const;
  // The round the next Exchange completes.
  uint32_t NextRound() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return round_ + 1; }
  // One round: publishes this rank's arrival and waits for every peer's. `op` names the
  // collective in errors. Marks the communicator broken on failure.
  absl::Status Exchange(const char* op) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // OK unless an earlier collective failed.
  absl::Status CheckUsable(const char* op) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const int64_t rank_, world_size_;
  const std::chrono::milliseconds timeout_;
  Segment* const segment_;
  const size_t bytes_;
  absl::Mutex mu_;
  uint32_t round_ ABSL_GUARDED_BY(mu_) = 0;  // rounds this rank has completed
  absl::Status broken_ ABSL_GUARDED_BY(mu_);
};

}  // namespace loom

#endif  // LOOM_WORKER_COMM_SHM_COMMUNICATOR_H_
