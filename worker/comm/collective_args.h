// Argument checks every communicator applies before a collective, so Gloo and NCCL reject the
// same bad calls with the same messages.
#ifndef LOOM_WORKER_COMM_COLLECTIVE_ARGS_H_
#define LOOM_WORKER_COMM_COLLECTIVE_ARGS_H_

#include <cstdint>

#include "absl/status/status.h"
#include "common/tensor.h"

namespace loom {

// `what` of collective `op` must be defined and contiguous.
absl::Status CheckContiguous(const char* op, const char* what, const Tensor& t);
// AllGather: both contiguous, out = [world, in.shape...] of in's dtype.
absl::Status CheckAllGatherArgs(const Tensor& in, const Tensor& out, int64_t world_size);
// AllGatherLastDim: both contiguous, in has a dim, out = in.shape with the last dim × world, of
// in's dtype.
absl::Status CheckAllGatherLastDimArgs(const Tensor& in, const Tensor& out, int64_t world_size);

}  // namespace loom

#endif  // LOOM_WORKER_COMM_COLLECTIVE_ARGS_H_
