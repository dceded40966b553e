// The GPU communicator: NCCL collectives among the ranks of one tensor-parallel group, one GPU
// per rank.
//
// Ranks meet through an NCCL unique id that the controller makes (controller/nccl_id.h) and hands
// to every rank; Create builds the communicator on the rank's device with a stream of its own.
//
// Memory contract: every Tensor passed in points at DEVICE memory on this communicator's device
// (e.g. Tensor::Borrow over a cudaMalloc'd pointer), contiguous. The collectives run on the
// communicator's own stream, so the caller must have finished writing the inputs (synchronised
// the streams that produce them) before the call. Each collective synchronises its stream before
// returning: on OK the results are complete and visible to every stream.
//
// Serialised by a mutex. A failed collective (NCCL or CUDA error, or no completion within the
// timeout) aborts the NCCL communicator; every later call fails with FailedPrecondition and the
// group has to be rebuilt. Argument errors (shapes, dtypes) fail that call alone.
#ifndef LOOM_WORKER_COMM_NCCL_COMMUNICATOR_H_
#define LOOM_WORKER_COMM_NCCL_COMMUNICATOR_H_

#include <chrono>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "worker/comm/communicator.h"

struct ncclComm;     // ncclComm_t
struct CUstream_st;  // cudaStream_t

namespace loom {

struct NcclOptions {
  int64_t rank = 0;
  int64_t world_size = 1;
  // The CUDA device this rank uses (an index among the devices visible to the process).
  int device = 0;
  // NCCL_UNIQUE_ID_BYTES (128) bytes from NewNcclUniqueId; the same on every rank of the group.
  std::string unique_id;
  // Bounds building the communicator (waiting for every rank) and each collective.
  std::chrono::milliseconds timeout = std::chrono::seconds(30);
};

// NcclCommunicator::Create where NCCL is built; FailedPrecondition in a build without it (what
// the worker calls, so it needs no NCCL headers or library to compile).
absl::StatusOr<std::unique_ptr<Communicator>> CreateNcclCommunicator(const NcclOptions& options);

class NcclCommunicator : public Communicator {
 public:
  // Blocks until all world_size ranks have called Create with the same unique id, or the
  // timeout passes (DeadlineExceeded).
  static absl::StatusOr<std::unique_ptr<NcclCommunicator>> Create(const NcclOptions& options);
  ~NcclCommunicator() override;

  int64_t rank() const override { return rank_; }
  int64_t world_size() const override { return world_size_; }
  int device() const { return device_; }
  // F32, BF16 or F16.
  absl::Status AllReduceSum(Tensor& tensor) override;
  // Any dtype (bytes are moved).
  absl::Status AllGatherLastDim(const Tensor& in, Tensor& out) override;
  absl::Status AllGather(const Tensor& in, Tensor& out) override;
  absl::Status Broadcast(Tensor& tensor, int64_t root) override;
  // One group of ncclSend/ncclRecv (the root's own part is a device copy). NCCL does not check
  // that a receiver's `out` has its part's size; a mismatch is undefined (a hang until the
  // timeout, or a short read), so callers size each `out` from the same regions as the root.
  absl::Status Scatter(absl::Span<const Tensor> parts, Tensor& out, int64_t root) override;
  absl::Status Barrier() override;

 private:
  struct CommDeleter {
    void operator()(ncclComm* comm) const;
  };
  struct StreamDeleter {
    void operator()(CUstream_st* stream) const;
  };
  struct DeviceMemoryDeleter {
    void operator()(void* ptr) const;
  };
  using CommPtr = std::unique_ptr<ncclComm, CommDeleter>;
  using StreamPtr = std::unique_ptr<CUstream_st, StreamDeleter>;
  using DevicePtr = std::unique_ptr<void, DeviceMemoryDeleter>;

  NcclCommunicator(const NcclOptions& options, StreamPtr stream, DevicePtr barrier_buffer,
                   CommPtr comm);
  // Runs `op` (which enqueues work on the stream and returns a Status) under the mutex, then
  // waits for the stream. Any failure names `name` and the rank, aborts the communicator and
  // marks it broken.
  template <typename Op>
  absl::Status Run(const char* name, Op&& op);
  // Waits for the non-blocking communicator to leave ncclInProgress, then for the stream to
  // drain, watching for asynchronous NCCL errors and the deadline.
  absl::Status WaitLocked(std::chrono::steady_clock::time_point deadline)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const int64_t rank_, world_size_;
  const int device_;
  const std::chrono::milliseconds timeout_;
  absl::Mutex mu_;
  // Declared in this order so the communicator goes before the buffer and stream it uses.
  StreamPtr stream_ ABSL_GUARDED_BY(mu_);
  DevicePtr barrier_buffer_ ABSL_GUARDED_BY(mu_);  // one f32 for Barrier's all-reduce
  CommPtr comm_ ABSL_GUARDED_BY(mu_);              // null once aborted
  absl::Status broken_ ABSL_GUARDED_BY(mu_);       // OK until a collective fails
};

}  // namespace loom

#endif  // LOOM_WORKER_COMM_NCCL_COMMUNICATOR_H_
