// Argument checks shared by the CPU kernels. Each returns InvalidArgument naming the kernel and
// the argument, so a caller's bad metadata surfaces as a message instead of a stray read.
#ifndef LOOM_KERNELS_CPU_CHECK_H_
#define LOOM_KERNELS_CPU_CHECK_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/tensor.h"

namespace loom::kernels::internal {

inline absl::Status CheckTensor(const char* kernel, const char* name, const Tensor& t, DType dtype,
                                int64_t rank, bool contiguous) {
  if (!t.defined()) {
    return absl::InvalidArgumentError(absl::StrCat(kernel, ": ", name, " is undefined"));
  }
  if (t.dtype() != dtype) {
    return absl::InvalidArgumentError(
        absl::StrCat(kernel, ": ", name, " must be ", DTypeName(dtype), ", got ", t.DebugString()));
  }
  if (t.dim() != rank) {
    return absl::InvalidArgumentError(
        absl::StrCat(kernel, ": ", name, " must have rank ", rank, ", got ", t.DebugString()));
  }
  if (contiguous && !t.is_contiguous()) {
    return absl::InvalidArgumentError(
        absl::StrCat(kernel, ": ", name, " must be contiguous, got ", t.DebugString()));
  }
  return absl::OkStatus();
}

inline absl::Status CheckShape(const char* kernel, const char* name, const Tensor& t,
                               const std::vector<int64_t>& shape) {
  if (t.shape() != shape) {
    return absl::InvalidArgumentError(absl::StrCat(kernel, ": ", name, " must be ",
                                                   ShapeString(shape), ", got ", t.DebugString()));
  }
  return absl::OkStatus();
}

}  // namespace loom::kernels::internal

#endif  // LOOM_KERNELS_CPU_CHECK_H_
