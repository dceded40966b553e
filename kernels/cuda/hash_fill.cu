// FillHashUniform on the device: each thread computes elements on its own from their full-tensor
// index (common/hash_uniform.h, the same code the host runs), so a dummy load writes device
// memory directly, with no host buffer and no copy, and every device gets the host's bits.
#include <cuda_runtime.h>

#include <cstdint>

#include "common/hash_uniform.h"
#include "kernels/cuda/device_util.cuh"
#include "kernels/cuda/launch.h"

namespace loom::kernels::cuda::internal {
namespace {

constexpr int kThreads = 256;

template <typename T>
__global__ void HashFillKernel(HashFillRegion r, T* __restrict__ out) {
  const int64_t run = r.rows * r.inner, n = r.outer * run;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t o = i / run, within = i - o * run;
    const int64_t global = (o * r.full_rows + r.start) * r.inner + within;
    out[i] = FromFloat<T>(HashUniform(r.key, global, r.range));
  }
}

}  // namespace

cudaError_t LaunchFillHashUniform(const HashFillRegion& region, Storage type, void* out,
                                  cudaStream_t stream) {
  const int64_t n = region.outer * region.rows * region.inner;
  if (n <= 0) return cudaSuccess;
  DispatchStorage(type, [&](auto tag) {
    using T = decltype(tag);
    HashFillKernel<T><<<GridFor(n, kThreads), kThreads, 0, stream>>>(region, static_cast<T*>(out));
    return 0;
  });
  return cudaGetLastError();
}

}  // namespace loom::kernels::cuda::internal
