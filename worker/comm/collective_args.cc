#include "worker/comm/collective_args.h"

#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "worker/comm/communicator.h"

namespace loom {

absl::Status CheckContiguous(const char* op, const char* what, const Tensor& t) {
  if (!t.defined()) {
    return absl::InvalidArgumentError(absl::StrCat(op, ": ", what, " is undefined"));
  }
  if (!t.is_contiguous()) {
    return absl::InvalidArgumentError(
        absl::StrCat(op, ": ", what, " must be contiguous, got ", t.DebugString()));
  }
  return absl::OkStatus();
}

absl::Status CheckF32(const char* op, const char* what, const Tensor& t) {
  if (t.dtype() != DType::kF32) {
    return absl::InvalidArgumentError(
        absl::StrCat(op, ": ", what, " must be F32, got ", t.DebugString()));
  }
  return CheckContiguous(op, what, t);
}

absl::Status CheckAllGatherArgs(const Tensor& in, const Tensor& out, int64_t world_size) {
  LOOM_RETURN_IF_ERROR(CheckContiguous("AllGather", "in", in));
  LOOM_RETURN_IF_ERROR(CheckContiguous("AllGather", "out", out));
  std::vector<int64_t> want = {world_size};
  want.insert(want.end(), in.shape().begin(), in.shape().end());
  if (out.dtype() != in.dtype() || out.shape() != want) {
    return absl::InvalidArgumentError(absl::StrCat("AllGather: out must be ", ShapeString(want),
                                                   " ", DTypeName(in.dtype()), ", got ",
                                                   out.DebugString()));
  }
  return absl::OkStatus();
}

absl::Status CheckAllGatherLastDimArgs(const Tensor& in, const Tensor& out, int64_t world_size) {
  LOOM_RETURN_IF_ERROR(CheckContiguous("AllGatherLastDim", "in", in));
  LOOM_RETURN_IF_ERROR(CheckContiguous("AllGatherLastDim", "out", out));
  std::vector<int64_t> want = in.shape();
  if (want.empty()) {
    return absl::InvalidArgumentError("AllGatherLastDim: input must have at least one dim");
  }
  want.back() *= world_size;
  if (out.dtype() != in.dtype() || out.shape() != want) {
    return absl::InvalidArgumentError(
        absl::StrCat("AllGatherLastDim: out must be ", ShapeString(want), " ",
                     DTypeName(in.dtype()), ", got ", out.DebugString()));
  }
  return absl::OkStatus();
}

absl::Status CheckScatterArgs(absl::Span<const Tensor> parts, const Tensor& out, int64_t root,
                              int64_t rank, int64_t world_size) {
  if (root < 0 || root >= world_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("Scatter: root ", root, " outside [0, ", world_size, ")"));
  }
  LOOM_RETURN_IF_ERROR(CheckContiguous("Scatter", "out", out));
  if (rank != root) return absl::OkStatus();
  if (static_cast<int64_t>(parts.size()) != world_size) {
    return absl::InvalidArgumentError(absl::StrCat("Scatter: the root needs one part per rank (",
                                                   world_size, "), got ", parts.size()));
  }
  for (size_t r = 0; r < parts.size(); ++r) {
    const std::string what = absl::StrCat("part ", r);
    LOOM_RETURN_IF_ERROR(CheckContiguous("Scatter", what.c_str(), parts[r]));
    if (parts[r].dtype() != out.dtype()) {
      return absl::InvalidArgumentError(absl::StrCat("Scatter: ", what, " must be ",
                                                     DTypeName(out.dtype()), " like out, got ",
                                                     parts[r].DebugString()));
    }
  }
  if (parts[root].shape() != out.shape()) {
    return absl::InvalidArgumentError(
        absl::StrCat("Scatter: the root's out must have its part's shape ",
                     ShapeString(parts[root].shape()), ", got ", out.DebugString()));
  }
  return absl::OkStatus();
}

absl::Status AllGatherLastDimByRows(Communicator& comm, const Tensor& in, Tensor& out) {
  LOOM_RETURN_IF_ERROR(CheckF32("AllGatherLastDim", "in", in));
  const int64_t world = comm.world_size();
  LOOM_RETURN_IF_ERROR(CheckAllGatherLastDimArgs(in, out, world));
  if (world == 1) return out.CopyFrom(in);
  std::vector<int64_t> gathered_shape = {world};
  gathered_shape.insert(gathered_shape.end(), in.shape().begin(), in.shape().end());
  Tensor gathered = Tensor::Empty(DType::kF32, gathered_shape);
  LOOM_RETURN_IF_ERROR(comm.AllGather(in, gathered));
  // Rows are independent: [world, rows, n] interleaved is [rows, world * n].
  const int64_t n = in.shape().back(), rows = n == 0 ? 0 : in.numel() / n;
  const float* g = gathered.data<float>();
  float* o = out.data<float>();
  for (int64_t w = 0; w < world; ++w) {
    for (int64_t r = 0; r < rows; ++r) {
      std::memcpy(o + (r * world + w) * n, g + (w * rows + r) * n, n * sizeof(float));
    }
  }
  return absl::OkStatus();
}

}  // namespace loom
