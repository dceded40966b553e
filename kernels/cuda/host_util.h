// Argument checks and conversions shared by the host side of the CUDA kernels.
#ifndef LOOM_KERNELS_CUDA_HOST_UTIL_H_
#define LOOM_KERNELS_CUDA_HOST_UTIL_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "common/tensor.h"
#include "kernels/checks.h"
#include "kernels/cuda/launch.h"

namespace loom::kernels::cuda::internal {

inline bool IsStorageType(DType dtype) {
  return dtype == DType::kF32 || dtype == DType::kBF16 || dtype == DType::kF16;
}

inline Storage ToStorage(DType dtype) {
  switch (dtype) {
    case DType::kBF16:
      return Storage::kBF16;
    case DType::kF16:
      return Storage::kF16;
    default:
      return Storage::kF32;
  }
}

inline absl::Status CheckStored(const char* kernel, const char* name, const Tensor& t) {
  if (!t.defined() || !IsStorageType(t.dtype())) {
    return absl::InvalidArgumentError(
        absl::StrCat(kernel, ": ", name, " must be F32, BF16 or F16, got ", t.DebugString()));
  }
  return absl::OkStatus();
}

// A [tokens, heads, head_dim] f32 view with a contiguous last dimension.
inline absl::Status CheckHeads(const char* kernel, const char* name, const Tensor& t,
                               int64_t tokens, int64_t head_dim) {
  LOOM_RETURN_IF_ERROR(
      ::loom::kernels::internal::CheckTensor(kernel, name, t, DType::kF32, 3, false));
  if (t.size(0) != tokens || t.size(2) != head_dim) {
    return absl::InvalidArgumentError(absl::StrCat(kernel, ": ", name, " ", t.DebugString(),
                                                   " must be [", tokens, ", heads, ", head_dim,
                                                   "]"));
  }
  if (t.strides()[2] != 1 && head_dim > 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(kernel, ": ", name, " needs a contiguous head dimension"));
  }
  return absl::OkStatus();
}

}  // namespace loom::kernels::cuda::internal

#endif  // LOOM_KERNELS_CUDA_HOST_UTIL_H_
