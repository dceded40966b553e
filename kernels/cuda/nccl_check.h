// CUDA runtime and NCCL return codes as absl::Status, for the code around the kernels: the NCCL
// communicator and the controller's unique-id helper.
//
//   LOOM_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToDevice, stream));
//   LOOM_NCCL_RETURN_IF_ERROR(ncclGetUniqueId(&id));
//
// On failure the enclosing function (returning absl::Status or absl::StatusOr<T>) returns an
// error whose message holds the expression as written, the file and line, and the library's own
// name and description of the code. Only for builds with CUDA and NCCL (LOOM_WITH_NCCL).
#ifndef LOOM_KERNELS_CUDA_NCCL_CHECK_H_
#define LOOM_KERNELS_CUDA_NCCL_CHECK_H_

#include <cuda_runtime_api.h>
#include <nccl.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "kernels/cuda/cuda_check.h"

namespace loom {

// The error for `error` returned by `expr` at file:line (the kernels' mapping: one table of
// CUDA codes for the whole project). cudaSuccess gives OK.
inline absl::Status CudaErrorToStatus(cudaError_t error, const char* expr, const char* file,
                                      int line) {
  return kernels::cuda::CudaStatus(error, expr, file, line);
}

// The error for `result` returned by `expr` at file:line. ncclSuccess gives OK; ncclInProgress
// (a non-blocking communicator still working) is not an error either.
inline absl::Status NcclErrorToStatus(ncclResult_t result, const char* expr, const char* file,
                                      int line) {
  if (result == ncclSuccess || result == ncclInProgress) return absl::OkStatus();
  absl::StatusCode code = absl::StatusCode::kInternal;
  switch (result) {
    case ncclInvalidArgument:
      code = absl::StatusCode::kInvalidArgument;
      break;
    case ncclInvalidUsage:
      code = absl::StatusCode::kFailedPrecondition;
      break;
    case ncclSystemError:
    case ncclRemoteError:
      code = absl::StatusCode::kUnavailable;
      break;
    default:
      break;
  }
  return absl::Status(code, absl::StrCat(expr, " failed at ", file, ":", line, ": ",
                                         ncclGetErrorString(result), " (NCCL error ",
                                         static_cast<int>(result), ")"));
}

}  // namespace loom

#define LOOM_CUDA_RETURN_IF_ERROR(expr)                                                     \
  do {                                                                                      \
    const cudaError_t loom_cuda_error_ = (expr);                                            \
    if (loom_cuda_error_ != cudaSuccess) {                                                  \
      return ::loom::CudaErrorToStatus(loom_cuda_error_, #expr, __FILE__, __LINE__);        \
    }                                                                                       \
  } while (false)

// ncclInProgress passes: callers of non-blocking communicators wait for it themselves.
#define LOOM_NCCL_RETURN_IF_ERROR(expr)                                                     \
  do {                                                                                      \
    const ncclResult_t loom_nccl_result_ = (expr);                                          \
    if (loom_nccl_result_ != ncclSuccess && loom_nccl_result_ != ncclInProgress) {          \
      return ::loom::NcclErrorToStatus(loom_nccl_result_, #expr, __FILE__, __LINE__);       \
    }                                                                                       \
  } while (false)

#endif  // LOOM_KERNELS_CUDA_NCCL_CHECK_H_
