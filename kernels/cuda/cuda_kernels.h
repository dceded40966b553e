// The CUDA implementation of kernels/kernels.h and kernels/sampling.h.
//
// Each entry point has the CPU kernel's name, semantics, shapes and checks, takes the
// DeviceContext it runs on first, and works on device tensors (see device_context.h). Work is
// queued on the context's stream and the call returns without waiting; shape and dtype errors
// come back at once as InvalidArgument, before anything is queued. Differences from the CPU:
//  - Stored tensors may also be f16 (weights, embedding tables) and the KV caches may be bf16 or
//    f16 (they are f32 only on the CPU); activations are f32 everywhere, accumulation is f32.
//  - Linear with bf16/f16 weights rounds the activations to the weights' type and runs one
//    tensor-core GEMM (cuBLAS, f32 accumulation and output); the CPU keeps f32 activations. The
//    difference is the rounding of x, about 2^-9 relative per product (bf16; 2^-12 for f16,
//    whose range also ends at ±65504: activations beyond it become infinite).
//  - Indices that live in device memory (RoPE positions, KV slots) are checked by the kernels:
//    a bad one skips its token and is reported by the next DeviceContext::Synchronize(), where
//    the CPU rejects the call before writing anything. Embedding ids outside the shard are
//    zeros, as on the CPU.
//  - PagedAttention's batch metadata (AttentionBatch) is host data, checked on the host like the
//    CPU's and uploaded; a PagedAttentionPlan lets one upload serve every layer of a step.
//  - Sample synchronises (tokens go to the host); see kernels/cuda/sampling.cu for how its
//    draw differs from the CPU's while keeping the distribution and the determinism.
#ifndef LOOM_KERNELS_CUDA_CUDA_KERNELS_H_
#define LOOM_KERNELS_CUDA_CUDA_KERNELS_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/tensor.h"
#include "kernels/cuda/attention_plan.h"
#include "kernels/cuda/device_context.h"
#include "kernels/kernels.h"
#include "kernels/sampling.h"

namespace loom::kernels::cuda {

// out[M, N] = x[M, K] · w[N, K]ᵀ (+ bias[N]); w f32, bf16 or f16.
absl::Status Linear(DeviceContext& context, const Tensor& x, const Tensor& w, const Tensor* bias,
                    Tensor& out);

// out[T, H] = x / rms(x) * weight per row; `out` may alias `x`.
absl::Status RmsNorm(DeviceContext& context, const Tensor& x, const Tensor& weight, float eps,
                     Tensor& out);

// residual += x; x = RmsNorm(residual) * weight.
absl::Status FusedAddRmsNorm(DeviceContext& context, Tensor& x, Tensor& residual,
                             const Tensor& weight, float eps);

// NeoX rotary embedding in place on q [T, Hq, D] and k [T, Hk, D] (strided heads, contiguous
// last dim); positions i32 [T] and cos_sin f32 [max_positions, D] on the device.
absl::Status ApplyRope(DeviceContext& context, Tensor& q, Tensor& k, const Tensor& positions,
                       const Tensor& cos_sin);

// out[T, I] = silu(gate_up[:, :I]) * gate_up[:, I:].
absl::Status SiluAndMul(DeviceContext& context, const Tensor& gate_up, Tensor& out);

// out[T, H] = table[ids[t] - vocab_start], zeros outside the shard; table f32, bf16 or f16.
absl::Status Embedding(DeviceContext& context, const Tensor& ids, const Tensor& table,
                       int64_t vocab_start, Tensor& out);

// Scatters k, v [T, Hk, D] (f32, strided heads) into the caches [num_blocks, block_size, Hk, D]
// (f32, bf16 or f16, converted on the way in) at slot_mapping (i64 [T]); negative slots skip.
absl::Status WriteKvCache(DeviceContext& context, const Tensor& k, const Tensor& v,
                          const Tensor& slot_mapping, Tensor& k_cache, Tensor& v_cache);

// Attention over the paged caches, as kernels::PagedAttention: q f32 [T, Hq, D] (may be
// strided), caches [num_blocks, block_size, Hk, D] (f32, bf16 or f16, both alike), out f32
// [T, Hq, D] contiguous. head_dim up to 256, at most 64 query heads per KV head. window > 0:
// sliding-window attention over the last `window` positions (0 = none).
absl::Status PagedAttention(DeviceContext& context, const Tensor& q, const Tensor& k_cache,
                            const Tensor& v_cache, const AttentionBatch& batch, float scale,
                            int64_t window, Tensor& out);

// The same with a plan made (and uploaded) once for the step: the tensors must match the
// geometry the plan was made for.
absl::Status PagedAttention(DeviceContext& context, const Tensor& q, const Tensor& k_cache,
                            const Tensor& v_cache, const PagedAttentionPlan& plan, float scale,
                            int64_t window, Tensor& out);

// Checks `batch` against the geometry, plans the work for this device and uploads it (with a
// fixed launch shape and into `persistent` for a graph: see PagedAttentionPlan::Make/Upload).
absl::StatusOr<PagedAttentionPlan> PlanPagedAttention(DeviceContext& context,
                                                      const AttentionBatch& batch,
                                                      const AttentionGeometry& geometry,
                                                      int64_t fixed_max_keys = 0,
                                                      DeviceBuffer* persistent = nullptr);

// One token per row of logits [B, V] (f32, on the device), as kernels::Sample. Waits for the
// device; errors (NaN logits, all -inf, bad params) name the row like the CPU's.
absl::StatusOr<std::vector<int32_t>> Sample(DeviceContext& context, const Tensor& logits,
                                            const std::vector<SamplingParams>& params,
                                            const std::vector<uint64_t>& step);

}  // namespace loom::kernels::cuda

#endif  // LOOM_KERNELS_CUDA_CUDA_KERNELS_H_
