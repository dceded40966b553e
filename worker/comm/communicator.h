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
#include "absl/types/span.h"
#include "common/tensor.h"
#include "worker/comm/collective_args.h"

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
  // Rank r's `out` receives `root`'s parts[r]. Read on the root only: one contiguous tensor per
  // rank, in rank order, of out's dtype; the other ranks pass {}. Shapes may differ per rank (a
  // rank's region of a split tensor: the last vocab shard is shorter), but each rank's `out`
  // must hold as many bytes as its part: the root checks its own; on Gloo a receiver whose size
  // differs fails alone with InvalidArgument, NCCL cannot tell (see each implementation). On
  // the root, `out` may be parts[root] itself (nothing copied).
  virtual absl::Status Scatter(absl::Span<const Tensor> parts, Tensor& out, int64_t root) = 0;
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
  absl::Status Scatter(absl::Span<const Tensor> parts, Tensor& out, int64_t root) override {
    if (absl::Status s = CheckScatterArgs(parts, out, root, 0, 1); !s.ok()) return s;
    if (!out.device().is_cpu() || !parts[0].device().is_cpu()) {
      return absl::InvalidArgumentError("Scatter: one rank moves host tensors only");
    }
    if (out.raw_data() != parts[0].raw_data() && out.nbytes() > 0) {
      std::memcpy(out.raw_data(), parts[0].raw_data(), out.nbytes());
    }
    return absl::OkStatus();
  }
  absl::Status Barrier() override { return absl::OkStatus(); }
};

}  // namespace loom

#endif  // LOOM_WORKER_COMM_COMMUNICATOR_H_
