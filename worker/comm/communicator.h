// Collective operations among the tensor-parallel ranks of one model replica.
//
// One interface with a Gloo (CPU) and an NCCL (GPU) implementation; the single-rank one below is
// the degenerate case, so the forward pass is one code path at every TP size.
#ifndef LOOM_WORKER_COMM_COMMUNICATOR_H_
#define LOOM_WORKER_COMM_COMMUNICATOR_H_

#include <cstdint>

#include "absl/status/status.h"
#include "common/tensor.h"

namespace loom {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int64_t rank() const = 0;
  virtual int64_t world_size() const = 0;
  // In place: every rank ends with the element-wise sum over ranks. f32, contiguous.
  virtual absl::Status AllReduceSum(Tensor& tensor) = 0;
  // out[..., world * n] holds each rank's in[..., n] side by side along the last dim, in rank
  // order. f32, contiguous.
  virtual absl::Status AllGatherLastDim(const Tensor& in, Tensor& out) = 0;
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
};

}  // namespace loom

#endif  // LOOM_WORKER_COMM_COMMUNICATOR_H_
