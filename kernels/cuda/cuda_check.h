// CUDA runtime and cuBLAS return codes as absl::Status, for the CUDA kernel library.
//
//   LOOM_CUDA_CHECK(cudaMemsetAsync(p, 0, n, stream));
//   LOOM_CUBLAS_CHECK(cublasSetStream(handle, stream));
//
// On failure the enclosing function (returning absl::Status or absl::StatusOr<T>) returns an
// error whose message holds the expression as written, the file and line, and the library's own
// name and description of the code. kernels/cuda/nccl_check.h does the same for the CUDA and
// NCCL calls around the kernels (communicator, unique id), with its own macro names, so both
// headers can be included in one file.
#ifndef LOOM_KERNELS_CUDA_CUDA_CHECK_H_
#define LOOM_KERNELS_CUDA_CUDA_CHECK_H_

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace loom::kernels::cuda {

// The error for `error` returned by `expr` at file:line. cudaSuccess gives OK.
inline absl::Status CudaStatus(cudaError_t error, const char* expr, const char* file, int line) {
  if (error == cudaSuccess) return absl::OkStatus();
  absl::StatusCode code = absl::StatusCode::kInternal;
  switch (error) {
    case cudaErrorMemoryAllocation:
      code = absl::StatusCode::kResourceExhausted;
      break;
    case cudaErrorInvalidValue:
    case cudaErrorInvalidDevice:
    case cudaErrorInvalidDevicePointer:
    case cudaErrorInvalidConfiguration:
      code = absl::StatusCode::kInvalidArgument;
      break;
    case cudaErrorNoDevice:
    case cudaErrorInsufficientDriver:
    case cudaErrorNoKernelImageForDevice:
      code = absl::StatusCode::kFailedPrecondition;
      break;
    default:
      break;
  }
  return absl::Status(
      code, absl::StrCat(expr, " failed at ", file, ":", line, ": ", cudaGetErrorString(error),
                         " (", cudaGetErrorName(error), ")"));
}

// The error for `status` returned by `expr` at file:line. CUBLAS_STATUS_SUCCESS gives OK.
inline absl::Status CublasStatus(cublasStatus_t status, const char* expr, const char* file,
                                 int line) {
  if (status == CUBLAS_STATUS_SUCCESS) return absl::OkStatus();
  absl::StatusCode code = absl::StatusCode::kInternal;
  switch (status) {
    case CUBLAS_STATUS_ALLOC_FAILED:
      code = absl::StatusCode::kResourceExhausted;
      break;
    case CUBLAS_STATUS_INVALID_VALUE:
      code = absl::StatusCode::kInvalidArgument;
      break;
    case CUBLAS_STATUS_NOT_INITIALIZED:
    case CUBLAS_STATUS_ARCH_MISMATCH:
    case CUBLAS_STATUS_NOT_SUPPORTED:
      code = absl::StatusCode::kFailedPrecondition;
      break;
    default:
      break;
  }
  return absl::Status(
      code, absl::StrCat(expr, " failed at ", file, ":", line, ": ", cublasGetStatusString(status),
                         " (", cublasGetStatusName(status), ")"));
}

}  // namespace loom::kernels::cuda

#define LOOM_CUDA_CHECK(expr)                                                                      \
  do {                                                                                             \
    const cudaError_t loom_cuda_check_error_ = (expr);                                             \
    if (loom_cuda_check_error_ != cudaSuccess) {                                                   \
      return ::loom::kernels::cuda::CudaStatus(loom_cuda_check_error_, #expr, __FILE__, __LINE__); \
    }                                                                                              \
  } while (false)

#define LOOM_CUBLAS_CHECK(expr)                                                              \
  do {                                                                                       \
    const cublasStatus_t loom_cublas_check_status_ = (expr);                                 \
    if (loom_cublas_check_status_ != CUBLAS_STATUS_SUCCESS) {                                \
      return ::loom::kernels::cuda::CublasStatus(loom_cublas_check_status_, #expr, __FILE__, \
                                                 __LINE__);                                  \
    }                                                                                        \
  } while (false)

#endif  // LOOM_KERNELS_CUDA_CUDA_CHECK_H_
