// The entry points of Loom's compute kernels, one API for every device.
//
// Kernels are free functions over tensor views. Each takes the ExecutionContext it runs on
// (kernels/execution_context.h) and dispatches to that device's implementation (kernels/cpu,
// kernels/cuda) after checking that the tensors live on the context's device (host-side
// arguments say so) and the arguments every device shares (kernels/checks.h). Activations are f32;
// weights may be f32, bf16 or f16 (converted on the fly, accumulated in f32). Every kernel checks
// its shapes and dtypes and returns InvalidArgument instead of touching memory when they are wrong.
// Outputs are written in full (no kernel relies on an output being zeroed). The CPU implementation
// (kernels/cpu) is the reference; other devices are tested against it.
#ifndef LOOM_KERNELS_KERNELS_H_
#define LOOM_KERNELS_KERNELS_H_

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "absl/status/status.h"
#include "common/tensor.h"
#include "kernels/execution_context.h"

namespace loom::kernels {

// out[M, N] = x[M, K] · w[N, K]ᵀ (+ bias[N]). x, out, bias: f32 contiguous; w: f32, bf16 or f16
// contiguous (the HF [out_features, in_features] layout).
absl::Status Linear(ExecutionContext& context, const Tensor& x, const Tensor& w, const Tensor* bias,
                    Tensor& out);

// out[T, H] = x / rms(x) * weight, per row. weight: f32 [H]. `out` may alias `x`.
absl::Status RmsNorm(ExecutionContext& context, const Tensor& x, const Tensor& weight, float eps,
                     Tensor& out);

// residual += x; x = RmsNorm(residual) * weight. Both [T, H] f32, updated in place.
absl::Status FusedAddRmsNorm(ExecutionContext& context, Tensor& x, Tensor& residual,
                             const Tensor& weight, float eps);

// Rotary embedding in the HF "rotate_half" (NeoX) layout, in place on q [T, Hq, D] and
// k [T, Hk, D] (f32; the last dim contiguous, heads may be strided views into a fused qkv row).
// cos_sin: f32 [max_positions, D] — the first D/2 columns are cos, the last D/2 sin, per
// position, as made by MakeRopeCosSin. positions: i32 [T].
absl::Status ApplyRope(ExecutionContext& context, Tensor& q, Tensor& k, const Tensor& positions,
                       const Tensor& cos_sin);

// out[T, I] = silu(gate_up[:, :I]) * gate_up[:, I:]. gate_up [T, 2I] f32.
absl::Status SiluAndMul(ExecutionContext& context, const Tensor& gate_up, Tensor& out);

// out[T, H] = table[ids[t] - vocab_start] for ids inside [vocab_start, vocab_start + V), zeros
// for ids outside (that is another rank's vocabulary shard). table: f32, bf16 or f16 [V, H];
// ids i32.
absl::Status Embedding(ExecutionContext& context, const Tensor& ids, const Tensor& table,
                       int64_t vocab_start, Tensor& out);

// Writes k, v [T, Hk, D] into the caches [num_blocks, block_size, Hk, D] at the flat slots
// slot_mapping[t] = block * block_size + offset (i64 [T]); a negative slot skips the token.
absl::Status WriteKvCache(ExecutionContext& context, const Tensor& k, const Tensor& v,
                          const Tensor& slot_mapping, Tensor& k_cache, Tensor& v_cache);

// Where each sequence of a batch sits in the flat token dimension and in the KV cache.
struct AttentionBatch {
  // Per sequence (size B+1): sequence s owns query rows [query_start[s], query_start[s+1]).
  std::vector<int32_t> query_start;
  // Per sequence: tokens in the cache after this step's write, new ones included. The query
  // rows are the last (query_start[s+1] - query_start[s]) of these positions.
  std::vector<int32_t> context_len;
  // Per sequence: block ids, in order, covering at least context_len tokens.
  std::vector<std::vector<int32_t>> block_tables;
};

// out[T, Hq, D] = softmax(q·Kᵀ·scale + causal mask)·V per sequence, reading K/V from the paged
// caches [num_blocks, block_size, Hk, D]. Query row i of a sequence with n new tokens and context
// c sits at position p = c - n + i and attends to positions [0, p], or with a sliding window
// (window > 0) to the last `window` of them, (p - window, p], as HF's sliding-window mask does.
// Prefill (n > 1, with or without cached context) and decode (n == 1) are the same call; GQA maps
// query head h to KV head h / (Hq / Hk). q may be a strided view (fused qkv); out is contiguous
// f32. Blocks wholly before a window's start are never read.
// The AttentionBatch is host data; the plan made from it once per step serves every layer
// (the CUDA one is uploaded to the device once). `batch` must outlive its plan.
class AttentionPlan {
 public:
  virtual ~AttentionPlan() = default;
};
// Checks `batch` against q [T, Hq, D] and the cache [num_blocks, block_size, Hk, D].
// fixed_max_keys > 0: the plan's launch shape is fixed for contexts up to that many keys and its
// device data lands at the same address at every step of T tokens (what a captured device graph
// replays; contexts beyond it are InvalidArgument). Plans of one T share that memory: use one
// at a time.
absl::StatusOr<std::unique_ptr<AttentionPlan>> PlanAttention(ExecutionContext& context,
                                                             const AttentionBatch& batch,
                                                             const Tensor& q, const Tensor& k_cache,
                                                             int64_t fixed_max_keys = 0);
absl::Status PagedAttention(ExecutionContext& context, const Tensor& q, const Tensor& k_cache,
                            const Tensor& v_cache, const AttentionPlan& plan, float scale,
                            int64_t window, Tensor& out);
// The same, planned for this one call.
absl::Status PagedAttention(ExecutionContext& context, const Tensor& q, const Tensor& k_cache,
                            const Tensor& v_cache, const AttentionBatch& batch, float scale,
                            int64_t window, Tensor& out);

// dst = src, same device, dtype and shape: dst contiguous, src contiguous or a 2-D view with a
// contiguous last dimension (a column slice of a fused row).
absl::Status Copy(ExecutionContext& context, const Tensor& src, Tensor& dst);

// One row's penalties (common/sampling_params.h): the distinct tokens seen so far and their
// counts in the output, both host data.
struct PenaltyRow {
  std::span<const int32_t> ids;
  std::span<const int32_t> output_counts;  // as long as ids
  float presence = 0.0f, frequency = 0.0f, repetition = 1.0f;
};
// In place on logits [R, V] (f32, on the device), per row r and each of rows[r].ids: first the
// repetition penalty (a positive logit divided by it, a negative one multiplied), then
// logit -= frequency × count + presence × (count > 0). rows.size() == R; ids in [0, V).
absl::Status ApplyPenalties(ExecutionContext& context, Tensor& logits,
                            const std::vector<PenaltyRow>& rows);

// out[r, :] = x[rows[r], :]. x f32 [T, H], rows i32 [R] on the device with values in [0, T)
// (the host checks them when it has them; a device checks its own), out f32 [R, H] contiguous.
absl::Status GatherRows(ExecutionContext& context, const Tensor& x, const Tensor& rows,
                        Tensor& out);

// Generated weights (common/hash_uniform.h): `out` (contiguous f32, bf16 or f16) is the region
// of a full tensor that spans `full_rows` rows along one dimension where `out` spans out's
// share, starting at row `start` — out viewed as [outer, rows, inner] of the full
// [outer, full_rows, inner] — and full element i is HashUniform(key, i, range), rounded to out's
// dtype. The same bits on every device.
struct HashFill {
  uint64_t key = 0;
  double range = 0;
  int64_t outer = 1, rows = 0, inner = 1;  // out's shape as [outer, rows, inner]
  int64_t full_rows = 0, start = 0;        // start + rows <= full_rows
};
absl::Status FillHashUniform(ExecutionContext& context, const HashFill& fill, Tensor& out);

}  // namespace loom::kernels

#endif  // LOOM_KERNELS_KERNELS_H_
