// The ExecutionContext of one GPU (kernels/execution_context.h), as CreateExecutionContext makes
// it for Device::Cuda(K) in a CUDA build: it owns a DeviceContext (stream, cuBLAS handle,
// scratch, error word) and its Backend forwards to the kernels of cuda_kernels.h.
//
// Kernels, copies and allocations are queued on the DeviceContext's stream, so they see each
// other's results in order; Synchronize() waits for them and reports the bad indices only the
// device saw. Kernel launches go to the calling thread's current device, which DeviceContext
// made the GPU's when it was created: a context used from another thread needs cudaSetDevice
// there first (Allocate and Memory set it themselves, as they must name the GPU they touch).
// Attention plans hold device memory released on this context's stream: drop them before it.
#ifndef LOOM_KERNELS_CUDA_CUDA_EXECUTION_CONTEXT_H_
#define LOOM_KERNELS_CUDA_CUDA_EXECUTION_CONTEXT_H_

#include <memory>

#include "absl/status/statusor.h"
#include "kernels/cuda/device_context.h"
#include "kernels/execution_context.h"

namespace loom::kernels::cuda {

// An ExecutionContext over `device`, which it owns; reads the GPU's name for Description().
absl::StatusOr<std::unique_ptr<ExecutionContext>> NewCudaExecutionContext(
    std::unique_ptr<DeviceContext> device);

// The DeviceContext under a context made by NewCudaExecutionContext (or CreateExecutionContext
// for a GPU), for code that queues its own work on the same stream (NCCL collectives); null for
// any other context, the host's included.
DeviceContext* DeviceContextOf(ExecutionContext& context);

}  // namespace loom::kernels::cuda

#endif  // LOOM_KERNELS_CUDA_CUDA_EXECUTION_CONTEXT_H_
