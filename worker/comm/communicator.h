// Collective operations among the tensor-parallel ranks of one model replica.
//
// One interface with a Gloo (CPU) and an NCCL (GPU) implementation; the single-rank one below is
// the degenerate case, so the forward pass is one code path at every TP size.
//
// Every collective is called by all ranks, in the same order, with the same shapes (the usual
// contract of collective libraries); a rank that skips one makes the others time out. Tensors
// must be contiguous. A failed collective (timeout, lost peer) leaves the communicator unusable:
// later calls fail too, and the group has to be rebuilt.
#ifndef LOOM_WORKER_COMM_COMMUNICATOR_H_
#define LOOM_WORKER_COMM_COMMUNICATOR_H_

#include <cstdint>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/tensor.h"

namespace loom {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int64_t rank() const = 0;
  virtual int64_t world_size() const = 0;
  // In place: every rank ends with the element-wise sum over ranks, bit-identical on every rank.
  // f32.
  virtual absl::Status AllReduceSum(Tensor& tensor) = 0;
  // out[..., world * n] holds each rank's in[..., n] side by side along the last dim, in rank
  // order. f32.
  virtual absl::Status AllGatherLastDim(const Tensor& in, Tensor& out) = 0;
  // out[world, ...] holds each rank's `in` in rank order. Any dtype (bytes are copied).
  virtual absl::Status AllGather(const Tensor& in, Tensor& out) = 0;
  // In place: every rank ends with `root`'s bytes. Any dtype; same shape on every rank.
  virtual absl::Status Broadcast(Tensor& tensor, int64_t root) = 0;
  // Returns once every rank has entered it.
  virtual absl::Status Barrier() = 0;
};

// World size 1: every collective is the identity.
class SingleRankCommunicator : public Communicator {
 public:
  int64_t rank() const override { return 0; }
  int64_t world_size() const override { return 1; }
  absl::Status AllReduceSum(Tensor&) override { return absl::OkStatus(); }
  absl::Status AllGatherLastDim(const Tensor& in, Tensor& out) override {
    return out.CopyFrom(in);
  }
  absl::Status AllGather(const Tensor& in, Tensor& out) override {
    if (out.dtype() != in.dtype() || out.nbytes() != in.nbytes() || !in.is_contiguous() ||
        !out.is_contiguous() || out.dim() != in.dim() + 1 || out.size(0) != 1) {
      return absl::InvalidArgumentError(absl::StrCat("AllGather: cannot gather ", in.DebugString(),
                                                     " into ", out.DebugString()));
    }
    if (in.nbytes() > 0) std::memcpy(out.raw_data(), in.raw_data(), in.nbytes());
    return absl::OkStatus();
  }
  absl::Status Broadcast(Tensor&, int64_t root) override {
    if (root != 0) {
      return absl::InvalidArgumentError(absl::StrCat("Broadcast: root ", root, " of 1 rank"));
    }
    return absl::OkStatus();
  }
  absl::Status Barrier() override { return absl::OkStatus(); }
};

}  // namespace loom

#endif  // LOOM_WORKER_COMM_COMMUNICATOR_H_
