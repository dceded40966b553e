// The memory-bound kernels: activation conversion and bias for Linear, RMSNorm (plain and with
// the residual add), SiluAndMul, Embedding, GatherRows, rotary embedding and the KV-cache
// scatter. Each
// follows its CPU reference in kernels/cpu line by line; comments note where the GPU differs.
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/device_util.cuh"
#include "kernels/cuda/launch.h"

namespace loom::kernels::cuda::internal {
namespace {

constexpr int kThreads = 256;

template <typename T>
__global__ void ConvertKernel(const float* __restrict__ x, int64_t n, T* __restrict__ out) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    out[i] = FromFloat<T>(x[i]);
  }
}

__global__ void AddBiasKernel(float* __restrict__ out, const float* __restrict__ bias, int64_t rows,
                              int64_t cols) {
  const int64_t n = rows * cols;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    out[i] += bias[i % cols];
  }
}

// One block per row. Each thread reads and writes the same elements in both passes, so `out`
// may alias `x` (and FusedAdd reads back only the residual values it wrote itself). The CPU
// sums squares in double; here each thread sums in f32 and the block tree-reduces, which
// differs by a few ulps of the mean.
template <bool kFusedAdd>
__global__ void RmsNormKernel(float* x, float* residual, const float* __restrict__ weight,
                              float eps, int64_t h, float* out) {
  __shared__ float scratch[32];
  const int64_t base = blockIdx.x * h;
  float* xr = x + base;
  float* rr = kFusedAdd ? residual + base : nullptr;
  float ss = 0.0f;
  for (int64_t i = threadIdx.x; i < h; i += blockDim.x) {
    float v = xr[i];
    if (kFusedAdd) {
      v += rr[i];
      rr[i] = v;
    }
    ss += v * v;
  }
  ss = BlockSum(ss, scratch);
  const float var = ss / static_cast<float>(h);
  const float inv = 1.0f / sqrtf(var + eps);
  float* dst = kFusedAdd ? xr : out + base;
  for (int64_t i = threadIdx.x; i < h; i += blockDim.x) {
    const float v = kFusedAdd ? rr[i] : xr[i];
    dst[i] = weight[i] * (v * inv);
  }
}

__global__ void SiluAndMulKernel(const float* __restrict__ gate_up, int64_t rows, int64_t inter,
                                 float* __restrict__ out) {
  const int64_t n = rows * inter;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t r = i / inter, c = i - r * inter;
    const float g = gate_up[r * 2 * inter + c];
    const float up = gate_up[r * 2 * inter + inter + c];
    out[i] = g / (1.0f + expf(-g)) * up;
  }
}

template <typename T>
__global__ void EmbeddingKernel(const int32_t* __restrict__ ids, const T* __restrict__ table,
                                int64_t vocab, int64_t h, int64_t vocab_start,
                                float* __restrict__ out) {
  const int64_t t = blockIdx.x;
  const int64_t row = static_cast<int64_t>(ids[t]) - vocab_start;
  float* dst = out + t * h;
  if (row < 0 || row >= vocab) {
    for (int64_t i = threadIdx.x; i < h; i += blockDim.x) dst[i] = 0.0f;
    return;
  }
  const T* src = table + row * h;
  for (int64_t i = threadIdx.x; i < h; i += blockDim.x) dst[i] = ToFloat(src[i]);
}

// One block per output row.
__global__ void GatherRowsKernel(const float* __restrict__ x, int64_t x_rows, int64_t x_row_stride,
                                 int64_t h, const int32_t* __restrict__ rows,
                                 float* __restrict__ out, int32_t* error_flags) {
  const int64_t r = blockIdx.x;
  const int32_t row = rows[r];
  if (row < 0 || row >= x_rows) {
    if (threadIdx.x == 0) atomicOr(error_flags, kErrorGatherRow);
    return;
  }
  const float* src = x + static_cast<int64_t>(row) * x_row_stride;
  float* dst = out + r * h;
  for (int64_t i = threadIdx.x; i < h; i += blockDim.x) dst[i] = src[i];
}

// One block per token: every (head, i < D/2) pair of q's and k's heads rotates once.
__global__ void RopeKernel(HeadsView q, HeadsView k, int64_t head_dim,
                           const int32_t* __restrict__ positions, const float* __restrict__ cos_sin,
                           int64_t max_positions, int32_t* error_flags) {
  const int64_t t = blockIdx.x;
  const int32_t pos = positions[t];
  if (pos < 0 || pos >= max_positions) {
    if (threadIdx.x == 0) atomicOr(error_flags, kErrorRopePosition);
    return;
  }
  const int64_t half = head_dim / 2;
  const float* cos = cos_sin + static_cast<int64_t>(pos) * head_dim;
  const float* sin = cos + half;
  const int64_t pairs = (q.heads + k.heads) * half;
  for (int64_t i = threadIdx.x; i < pairs; i += blockDim.x) {
    const int64_t head = i / half, j = i - head * half;
    float* x = head < q.heads ? q.data + t * q.row_stride + head * q.head_stride
                              : k.data + t * k.row_stride + (head - q.heads) * k.head_stride;
    const float a = x[j], b = x[j + half];
    x[j] = a * cos[j] - b * sin[j];
    x[j + half] = b * cos[j] + a * sin[j];
  }
}

template <typename T>
__global__ void WriteKvCacheKernel(HeadsView k, HeadsView v, int64_t head_dim,
                                   const int64_t* __restrict__ slots, T* k_cache, T* v_cache,
                                   int64_t num_slots, int32_t* error_flags) {
  const int64_t t = blockIdx.x;
  const int64_t slot = slots[t];
  if (slot < 0) return;
  if (slot >= num_slots) {
    if (threadIdx.x == 0) atomicOr(error_flags, kErrorKvSlot);
    return;
  }
  const int64_t per_slot = k.heads * head_dim;
  T* kd = k_cache + slot * per_slot;
  T* vd = v_cache + slot * per_slot;
  for (int64_t i = threadIdx.x; i < per_slot; i += blockDim.x) {
    const int64_t head = i / head_dim, d = i - head * head_dim;
    kd[i] = FromFloat<T>(k.data[t * k.row_stride + head * k.head_stride + d]);
    vd[i] = FromFloat<T>(v.data[t * v.row_stride + head * v.head_stride + d]);
  }
}

}  // namespace

cudaError_t LaunchConvertF32(const float* x, int64_t n, Storage to, void* out,
                             cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  DispatchStorage(to, [&](auto tag) {
    using T = decltype(tag);
    ConvertKernel<T><<<GridFor(n, kThreads), kThreads, 0, stream>>>(x, n, static_cast<T*>(out));
    return 0;
  });
  return cudaGetLastError();
}

cudaError_t LaunchAddBias(float* out, const float* bias, int64_t rows, int64_t cols,
                          cudaStream_t stream) {
  if (rows <= 0 || cols <= 0) return cudaSuccess;
  AddBiasKernel<<<GridFor(rows * cols, kThreads), kThreads, 0, stream>>>(out, bias, rows, cols);
  return cudaGetLastError();
}

cudaError_t LaunchRmsNorm(float* x, float* residual, const float* weight, float eps, int64_t rows,
                          int64_t h, float* out, cudaStream_t stream) {
  if (rows <= 0 || h <= 0) return cudaSuccess;
  // About four elements per thread, at least a warp, at most 1024 threads.
  int64_t threads = ((h + 3) / 4 + 31) / 32 * 32;
  threads = threads < 32 ? 32 : (threads > 1024 ? 1024 : threads);
  if (residual != nullptr) {
    RmsNormKernel<true><<<static_cast<unsigned>(rows), static_cast<unsigned>(threads), 0, stream>>>(
        x, residual, weight, eps, h, nullptr);
  } else {
    RmsNormKernel<false>
        <<<static_cast<unsigned>(rows), static_cast<unsigned>(threads), 0, stream>>>(
            x, nullptr, weight, eps, h, out);
  }
  return cudaGetLastError();
}

cudaError_t LaunchSiluAndMul(const float* gate_up, int64_t rows, int64_t inter, float* out,
                             cudaStream_t stream) {
  if (rows <= 0 || inter <= 0) return cudaSuccess;
  SiluAndMulKernel<<<GridFor(rows * inter, kThreads), kThreads, 0, stream>>>(gate_up, rows, inter,
                                                                             out);
  return cudaGetLastError();
}

cudaError_t LaunchEmbedding(const int32_t* ids, int64_t rows, const void* table, Storage type,
                            int64_t vocab, int64_t h, int64_t vocab_start, float* out,
                            cudaStream_t stream) {
  if (rows <= 0 || h <= 0) return cudaSuccess;
  DispatchStorage(type, [&](auto tag) {
    using T = decltype(tag);
    EmbeddingKernel<T><<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(
        ids, static_cast<const T*>(table), vocab, h, vocab_start, out);
    return 0;
  });
  return cudaGetLastError();
}

cudaError_t LaunchGatherRows(const float* x, int64_t x_rows, int64_t x_row_stride, int64_t h,
                             const int32_t* rows, int64_t num_rows, float* out,
                             int32_t* error_flags, cudaStream_t stream) {
  if (num_rows <= 0 || h <= 0) return cudaSuccess;
  GatherRowsKernel<<<static_cast<unsigned>(num_rows), kThreads, 0, stream>>>(
      x, x_rows, x_row_stride, h, rows, out, error_flags);
  return cudaGetLastError();
}

__global__ void ApplyPenaltiesKernel(float* logits, int64_t vocab, const PenaltyEntry* entries,
                                     int64_t n) {
  const int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e >= n) return;
  const PenaltyEntry p = entries[e];
  float* logit = logits + static_cast<int64_t>(p.row) * vocab + p.id;
  float v = *logit;
  if (p.repetition != 1.0f) v = v > 0.0f ? v / p.repetition : v * p.repetition;
  v -= p.frequency * static_cast<float>(p.count) + (p.count > 0 ? p.presence : 0.0f);
  *logit = v;
}

cudaError_t LaunchApplyPenalties(float* logits, int64_t vocab, const PenaltyEntry* entries,
                                 int64_t num_entries, cudaStream_t stream) {
  if (num_entries <= 0) return cudaSuccess;
  ApplyPenaltiesKernel<<<GridFor(num_entries, kThreads), kThreads, 0, stream>>>(
      logits, vocab, entries, num_entries);
  return cudaGetLastError();
}

cudaError_t LaunchApplyRope(HeadsView q, HeadsView k, int64_t tokens, int64_t head_dim,
                            const int32_t* positions, const float* cos_sin, int64_t max_positions,
                            int32_t* error_flags, cudaStream_t stream) {
  if (tokens <= 0 || head_dim < 2 || q.heads + k.heads <= 0) return cudaSuccess;
  RopeKernel<<<static_cast<unsigned>(tokens), 128, 0, stream>>>(q, k, head_dim, positions, cos_sin,
                                                                max_positions, error_flags);
  return cudaGetLastError();
}

cudaError_t LaunchWriteKvCache(HeadsView k, HeadsView v, int64_t tokens, int64_t head_dim,
                               const int64_t* slots, void* k_cache, void* v_cache, Storage type,
                               int64_t num_slots, int32_t* error_flags, cudaStream_t stream) {
  if (tokens <= 0 || head_dim <= 0 || k.heads <= 0) return cudaSuccess;
  DispatchStorage(type, [&](auto tag) {
    using T = decltype(tag);
    WriteKvCacheKernel<T><<<static_cast<unsigned>(tokens), 128, 0, stream>>>(
        k, v, head_dim, slots, static_cast<T*>(k_cache), static_cast<T*>(v_cache), num_slots,
        error_flags);
    return 0;
  });
  return cudaGetLastError();
}

}  // namespace loom::kernels::cuda::internal
