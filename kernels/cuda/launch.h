// The seam between the host side of the CUDA kernels (argument checks, planning, cuBLAS; .cc
// files compiled by the host compiler) and the device code (.cu files compiled by nvcc). Only
// plain structs and raw pointers cross it, so the .cu files need neither Abseil nor Tensor and
// compile quickly. Every launcher queues its kernels on `stream` and returns the launch error
// (cudaGetLastError), never waiting for the device. Arguments are checked by the caller.
#ifndef LOOM_KERNELS_CUDA_LAUNCH_H_
#define LOOM_KERNELS_CUDA_LAUNCH_H_

#include <cuda_runtime_api.h>

#include <cstdint>

namespace loom::kernels::cuda::internal {

// Element types of stored tensors (weights, tables, KV caches). Activations are always f32.
enum class Storage : int32_t { kF32 = 0, kBF16 = 1, kF16 = 2 };

// Bits of DeviceContext's device-side error word, set by kernels that find a bad index in
// device memory (they skip that row instead of reading or writing out of bounds).
inline constexpr int32_t kErrorRopePosition = 1;  // ApplyRope: position outside the table
inline constexpr int32_t kErrorKvSlot = 2;        // WriteKvCache: slot past the cache
inline constexpr int32_t kErrorGatherRow = 4;     // GatherRows: row index outside x

// out[i] = x[i] rounded to `to` (kBF16 or kF16), i < n.
cudaError_t LaunchConvertF32(const float* x, int64_t n, Storage to, void* out, cudaStream_t stream);
// out[m, n] += bias[n].
cudaError_t LaunchAddBias(float* out, const float* bias, int64_t rows, int64_t cols,
                          cudaStream_t stream);
// RmsNorm (residual == nullptr; out may equal x) or FusedAddRmsNorm (residual != nullptr;
// residual += x, x = norm(residual) · weight, out ignored). Rows of h contiguous floats.
cudaError_t LaunchRmsNorm(float* x, float* residual, const float* weight, float eps, int64_t rows,
                          int64_t h, float* out, cudaStream_t stream);
// out[t, i] = silu(gate_up[t, i]) · gate_up[t, inter + i].
cudaError_t LaunchSiluAndMul(const float* gate_up, int64_t rows, int64_t inter, float* out,
                             cudaStream_t stream);
// out[t] = table[ids[t] - vocab_start] or zeros outside [0, vocab).
cudaError_t LaunchEmbedding(const int32_t* ids, int64_t rows, const void* table, Storage type,
                            int64_t vocab, int64_t h, int64_t vocab_start, float* out,
                            cudaStream_t stream);
// out[r, :] = x[rows[r], :] for r < num_rows: x has x_rows rows of h contiguous floats,
// x_row_stride apart; out is contiguous. A row index outside [0, x_rows) leaves its output row
// untouched and sets kErrorGatherRow.
cudaError_t LaunchGatherRows(const float* x, int64_t x_rows, int64_t x_row_stride, int64_t h,
                             const int32_t* rows, int64_t num_rows, float* out,
                             int32_t* error_flags, cudaStream_t stream);

// Penalties on logits [rows, vocab]: entry e touches logits[row[e], id[e]] once (ids distinct
// per row), repetition first, then frequency × count[e] + presence × (count[e] > 0).
struct PenaltyEntry {
  int32_t row, id, count;
  float presence, frequency, repetition;
};
cudaError_t LaunchApplyPenalties(float* logits, int64_t vocab, const PenaltyEntry* entries,
                                 int64_t num_entries, cudaStream_t stream);

// Generated weights: out, viewed as [outer, rows, inner], is rows start.. of the full
// [outer, full_rows, inner] tensor whose element i is HashUniform(key, i, range).
struct HashFillRegion {
  uint64_t key;
  double range;
  int64_t outer, rows, inner, full_rows, start;
};
cudaError_t LaunchFillHashUniform(const HashFillRegion& region, Storage type, void* out,
                                  cudaStream_t stream);

// A [tokens, heads, head_dim] f32 view: rows and heads strided, head_dim contiguous.
struct HeadsView {
  float* data;
  int64_t row_stride, head_stride;  // in elements
  int64_t heads;
};

// Rotates q and k in place; positions outside [0, max_positions) leave their row untouched and
// set kErrorRopePosition.
cudaError_t LaunchApplyRope(HeadsView q, HeadsView k, int64_t tokens, int64_t head_dim,
                            const int32_t* positions, const float* cos_sin, int64_t max_positions,
                            int32_t* error_flags, cudaStream_t stream);

// Scatters k, v [tokens, heads, head_dim] into the caches [num_slots, heads, head_dim] (stored
// as `type`) at slots[t]; negative slots skip, slots >= num_slots skip and set kErrorKvSlot.
cudaError_t LaunchWriteKvCache(HeadsView k, HeadsView v, int64_t tokens, int64_t head_dim,
                               const int64_t* slots, void* k_cache, void* v_cache, Storage type,
                               int64_t num_slots, int32_t* error_flags, cudaStream_t stream);

// Paged attention. The work is a grid of (tile, KV head × head chunk, partition): a tile is up
// to `rows_per_tile` consecutive query rows of one sequence; a head chunk is up to
// kAttentionMaxQueries / rows query heads of one KV head's group; a partition is a span of
// `partition_keys` key positions. A block scores its queries against its span in chunks of
// kAttentionChunk keys with an online softmax. With one partition it writes `out`; with more it
// writes partials that a second kernel merges.
inline constexpr int32_t kAttentionMaxQueries = 8;  // (row, head) pairs per block
inline constexpr int32_t kAttentionChunk = 256;     // keys per online-softmax step
inline constexpr int32_t kAttentionMaxHeadDim = 256;

// Per tile, four int32s: first query row, row count, position of the first row, sequence.
inline constexpr int32_t kTileFields = 4;

struct PagedAttentionArgs {
  const float* q;
  int64_t q_row_stride, q_head_stride;
  const void* k_cache;
  const void* v_cache;
  Storage cache_type;
  float* out;  // [tokens, q_heads, head_dim] contiguous
  int32_t q_heads, kv_heads, head_dim, block_size;
  float scale;
  int32_t window;               // > 0: a query at p sees keys (p - window, p]; 0: all of [0, p]
  const int32_t* tiles;         // [num_tiles][kTileFields]
  const int32_t* block_tables;  // [num_seqs][max_blocks]
  int32_t max_blocks;
  int32_t num_tiles;
  int32_t heads_per_block;  // query heads of one group handled by one block
  int32_t head_chunks;      // ceil(group / heads_per_block)
  int32_t num_partitions;
  int32_t partition_keys;  // a multiple of kAttentionChunk
  // Only with num_partitions > 1: [num_tiles][kv_heads * head_chunks][num_partitions]
  // [kAttentionMaxQueries] of head_dim floats, and of (max, sum) float pairs.
  float* partial_out;
  float* partial_max_sum;
};

cudaError_t LaunchPagedAttention(const PagedAttentionArgs& args, cudaStream_t stream);

// How many attention blocks for this cache type and head_dim fit on one SM at once (from the
// CUDA occupancy calculator); the planner sizes split-K to fill the device in one wave.
cudaError_t PagedAttentionBlocksPerSm(Storage cache_type, int32_t head_dim, int* blocks);

// One row's sampling parameters, as the sampling kernel reads them.
struct SampleRowParams {
  float temperature;
  int32_t top_k;
  float top_p;
  int32_t pad;
  uint64_t seed;
  uint64_t step;
};

// Row outcome codes written beside each token.
inline constexpr int32_t kSampleOk = 0;
inline constexpr int32_t kSampleNaN = 1;  // a logit of the row is NaN
inline constexpr int32_t kSampleAllNegInf = 2;

// One token per row of logits [rows, vocab]; codes[r] says whether row r was valid.
cudaError_t LaunchSample(const float* logits, int64_t rows, int64_t vocab,
                         const SampleRowParams* params, int32_t* tokens, int32_t* codes,
                         cudaStream_t stream);

}  // namespace loom::kernels::cuda::internal

#endif  // LOOM_KERNELS_CUDA_LAUNCH_H_
