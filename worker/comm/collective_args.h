// Argument checks every communicator applies before a collective, so Gloo, shared memory and
// NCCL reject the same bad calls with the same messages; and the layout step the host
// communicators share.
#ifndef LOOM_WORKER_COMM_COLLECTIVE_ARGS_H_
#define LOOM_WORKER_COMM_COLLECTIVE_ARGS_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "common/tensor.h"

namespace loom {

class Communicator;

// `what` of collective `op` must be defined and contiguous.
absl::Status CheckContiguous(const char* op, const char* what, const Tensor& t);
// ... and f32.
absl::Status CheckF32(const char* op, const char* what, const Tensor& t);
// AllGather: both contiguous, out = [world, in.shape...] of in's dtype.
absl::Status CheckAllGatherArgs(const Tensor& in, const Tensor& out, int64_t world_size);
// AllGatherLastDim: both contiguous, in has a dim, out = in.shape with the last dim × world, of
// in's dtype.
absl::Status CheckAllGatherLastDimArgs(const Tensor& in, const Tensor& out, int64_t world_size);
// Scatter on `rank`: root in [0, world), out contiguous; on the root also one contiguous part
// per rank of out's dtype, parts[root] of out's shape. What the root sends the other ranks
// cannot be checked here (their sizes are theirs).
absl::Status CheckScatterArgs(absl::Span<const Tensor> parts, const Tensor& out, int64_t root,
                              int64_t rank, int64_t world_size);

// AllGatherLastDim through comm.AllGather, for transports that move whole buffers rank after
// rank: gathers [world, rows..., n], then interleaves the rows into out [rows..., world * n].
// Checks the arguments as every AllGatherLastDim does.
absl::Status AllGatherLastDimByRows(Communicator& comm, const Tensor& in, Tensor& out);

}  // namespace loom

#endif  // LOOM_WORKER_COMM_COLLECTIVE_ARGS_H_
