// Paged attention on the GPU: prefill (with or without cached context) and batched decode in
// one kernel, with the semantics of kernels/cpu/paged_attention.cc (sliding windows included).
//
// A block (4 warps) owns up to kAttentionMaxQueries query vectors that share one KV head: the
// GQA group's query heads of one or more consecutive rows of a sequence (decode: one row and
// its group; prefill: several rows, so each key read from memory serves all of them). It walks
// its span of key positions in chunks of kAttentionChunk:
//   1. the chunk's cache slots are looked up in the block table once, into shared memory;
//   2. each warp scores its keys against every query (lanes split head_dim, a warp reduction
//      per key), causal-masked, into shared memory;
//   3. per query, the chunk's max and sum update a running (max, sum), as an online softmax;
//   4. each warp rescales its accumulators and adds its keys' values, weighted.
// At the end the warps' accumulators are summed in a fixed order. When the batch alone cannot
// fill the GPU (decode at small batch, long contexts) the key span is split into partitions,
// each block writes an unnormalised partial with its (max, sum), and a second kernel merges them
// (split-K, as in vLLM's paged_attention_v2 and FlashDecoding).
//
// Keys and values are stored as f32, bf16 or f16 and widened to f32; all arithmetic is f32.
// Lanes own head_dim / 32 consecutive elements (E, a template parameter: head_dim ≤ 32·E), read
// as one vector per key row when head_dim == 32·E, so a warp reads a whole row in one coalesced
// access; several rows per warp are in flight at once.
#include <cuda_runtime.h>

#include <cstdint>
#include <limits>

#include "kernels/cuda/device_util.cuh"
#include "kernels/cuda/launch.h"

namespace loom::kernels::cuda::internal {
namespace {

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr int kQ = kAttentionMaxQueries;
constexpr int kChunk = kAttentionChunk;
constexpr int kUnroll = 4;  // key rows loaded per warp before the first is used
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

template <typename T, int E>
struct alignas(sizeof(T) * E) Pack {
  T v[E];
};

// Elements [lane·E, lane·E + E) of a head_dim-long row; those past head_dim read as zero.
template <typename T, int E>
__device__ __forceinline__ void LoadRow(const T* row, int lane, int head_dim, bool vector,
                                        float (&out)[E]) {
  if (vector) {
    const Pack<T, E> p = *reinterpret_cast<const Pack<T, E>*>(row + lane * E);
#pragma unroll
    for (int e = 0; e < E; ++e) out[e] = ToFloat(p.v[e]);
  } else {
#pragma unroll
    for (int e = 0; e < E; ++e) {
      const int idx = lane * E + e;
      out[e] = idx < head_dim ? ToFloat(row[idx]) : 0.0f;
    }
  }
}

// Which query vectors a block owns.
struct BlockQueries {
  int row0, rows, pos0, seq;  // the tile
  int kv;                     // KV head
  int head0;                  // first query head (absolute)
  int heads;                  // query heads per row in this block
  int count;                  // rows * heads ≤ kQ
};

__device__ __forceinline__ BlockQueries GetBlockQueries(const PagedAttentionArgs& a) {
  BlockQueries b;
  const int32_t* tile = a.tiles + static_cast<int64_t>(blockIdx.x) * kTileFields;
  b.row0 = tile[0];
  b.rows = tile[1];
  b.pos0 = tile[2];
  b.seq = tile[3];
  b.kv = blockIdx.y / a.head_chunks;
  const int chunk = blockIdx.y % a.head_chunks;
  const int group = a.q_heads / a.kv_heads;
  const int first = chunk * a.heads_per_block;
  b.head0 = b.kv * group + first;
  b.heads = min(a.heads_per_block, group - first);
  b.count = b.rows * b.heads;
  return b;
}

template <typename T, int E>
__global__ void __launch_bounds__(kThreads)
    PagedAttentionKernel(const PagedAttentionArgs a, bool vector) {
  constexpr int kPaddedDim = 32 * E;
  extern __shared__ float smem[];
  float* s_score = smem;                                       // [kQ][kChunk]
  float* s_acc = s_score + kQ * kChunk;                        // [kQ][kPaddedDim]
  float* s_max = s_acc + kQ * kPaddedDim;                      // [kQ]
  float* s_sum = s_max + kQ;                                   // [kQ]
  float* s_alpha = s_sum + kQ;                                 // [kQ]
  int32_t* s_slot = reinterpret_cast<int32_t*>(s_alpha + kQ);  // [kChunk]

  const BlockQueries b = GetBlockQueries(a);
  const int key_end = b.pos0 + b.rows;  // the tile's last row sees keys [0, key_end)
  const int span_begin = blockIdx.z * a.partition_keys;
  if (span_begin >= key_end) return;  // nothing of this tile in this partition
  const int span_end = min(key_end, span_begin + a.partition_keys);
  // With a sliding window no row of the tile sees keys before its first row's window. A
  // partition wholly before it still writes its (empty) partial: the merge skips a zero sum.
  const int window_begin = a.window > 0 ? max(0, b.pos0 - a.window + 1) : 0;
  const int keys_begin = max(span_begin, window_begin);

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int d = a.head_dim;
  for (int i = tid; i < kQ * kPaddedDim; i += kThreads) s_acc[i] = 0.0f;
  if (tid < kQ) {
    s_max[tid] = kNegInf;
    s_sum[tid] = 0.0f;
  }

  // Query vectors in registers: query qi is row qi / heads, head qi % heads of the block.
  float q[kQ][E];
  int q_pos[kQ];
#pragma unroll
  for (int qi = 0; qi < kQ; ++qi) {
    q_pos[qi] = 0;
#pragma unroll
    for (int e = 0; e < E; ++e) q[qi][e] = 0.0f;
    if (qi < b.count) {
      const int r = qi / b.heads, h = b.head0 + qi % b.heads;
      q_pos[qi] = b.pos0 + r;
      const float* qp = a.q + static_cast<int64_t>(b.row0 + r) * a.q_row_stride +
                        static_cast<int64_t>(h) * a.q_head_stride;
#pragma unroll
      for (int e = 0; e < E; ++e) {
        const int idx = lane * E + e;
        if (idx < d) q[qi][e] = qp[idx];
      }
    }
  }
  float acc[kQ][E];
#pragma unroll
  for (int qi = 0; qi < kQ; ++qi)
#pragma unroll
    for (int e = 0; e < E; ++e) acc[qi][e] = 0.0f;

  const int32_t* table = a.block_tables + static_cast<int64_t>(b.seq) * a.max_blocks;
  const int64_t slot_stride = static_cast<int64_t>(a.kv_heads) * d;
  const T* k_base = static_cast<const T*>(a.k_cache) + static_cast<int64_t>(b.kv) * d;
  const T* v_base = static_cast<const T*>(a.v_cache) + static_cast<int64_t>(b.kv) * d;

  for (int c0 = keys_begin; c0 < span_end; c0 += kChunk) {
    const int n = min(kChunk, span_end - c0);
    __syncthreads();  // the previous chunk's readers of s_slot and s_score are done
    for (int i = tid; i < n; i += kThreads) {
      const int p = c0 + i;
      s_slot[i] = table[p / a.block_size] * a.block_size + p % a.block_size;
    }
    __syncthreads();

    // 2. Scores.
    for (int base = warp * kUnroll; base < n; base += kWarps * kUnroll) {
      float key[kUnroll][E];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int i = base + u;
        if (i < n) {
          LoadRow<T, E>(k_base + s_slot[i] * slot_stride, lane, d, vector, key[u]);
        } else {
#pragma unroll
          for (int e = 0; e < E; ++e) key[u][e] = 0.0f;
        }
      }
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int i = base + u;
#pragma unroll
        for (int qi = 0; qi < kQ; ++qi) {
          if (qi < b.count) {  // the same for the whole warp, so the shuffles are safe
            float dot = 0.0f;
#pragma unroll
            for (int e = 0; e < E; ++e) dot += q[qi][e] * key[u][e];
            dot = WarpSum(dot);
            if (lane == 0 && i < n) {
              const int key = c0 + i;
              const bool masked =
                  key > q_pos[qi] || (a.window > 0 && key <= q_pos[qi] - a.window);
              s_score[qi * kChunk + i] = masked ? kNegInf : dot * a.scale;
            }
          }
        }
      }
    }
    __syncthreads();

    // 3. Online softmax bookkeeping, one warp per query.
    for (int qi = warp; qi < b.count; qi += kWarps) {
      float* s = s_score + qi * kChunk;
      float chunk_max = kNegInf;
      for (int i = lane; i < n; i += 32) chunk_max = fmaxf(chunk_max, s[i]);
      chunk_max = WarpMax(chunk_max);
      const float old_max = s_max[qi];
      const float new_max = fmaxf(old_max, chunk_max);
      float alpha = 1.0f, sum = 0.0f;
      if (new_max == kNegInf) {  // every key so far is masked for this query
        for (int i = lane; i < n; i += 32) s[i] = 0.0f;
      } else {
        alpha = expf(old_max - new_max);  // 0 on the first chunk with a visible key
        for (int i = lane; i < n; i += 32) {
          const float p = expf(s[i] - new_max);
          s[i] = p;
          sum += p;
        }
      }
      sum = WarpSum(sum);
      if (lane == 0) {
        s_max[qi] = new_max;
        s_sum[qi] = s_sum[qi] * alpha + sum;
        s_alpha[qi] = alpha;
      }
    }
    __syncthreads();

    // 4. Weighted values.
#pragma unroll
    for (int qi = 0; qi < kQ; ++qi) {
      if (qi < b.count) {
        const float alpha = s_alpha[qi];
#pragma unroll
        for (int e = 0; e < E; ++e) acc[qi][e] *= alpha;
      }
    }
    for (int base = warp * kUnroll; base < n; base += kWarps * kUnroll) {
      float value[kUnroll][E];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int i = base + u;
        if (i < n) {
          LoadRow<T, E>(v_base + s_slot[i] * slot_stride, lane, d, vector, value[u]);
        } else {
#pragma unroll
          for (int e = 0; e < E; ++e) value[u][e] = 0.0f;
        }
      }
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int i = base + u;
        if (i >= n) break;
#pragma unroll
        for (int qi = 0; qi < kQ; ++qi) {
          if (qi < b.count) {
            const float p = s_score[qi * kChunk + i];
#pragma unroll
            for (int e = 0; e < E; ++e) acc[qi][e] += p * value[u][e];
          }
        }
      }
    }
  }

  // The warps' accumulators, summed in warp order.
  for (int w = 0; w < kWarps; ++w) {
    __syncthreads();
    if (warp == w) {
#pragma unroll
      for (int qi = 0; qi < kQ; ++qi) {
        if (qi < b.count) {
#pragma unroll
          for (int e = 0; e < E; ++e) s_acc[qi * kPaddedDim + lane * E + e] += acc[qi][e];
        }
      }
    }
  }
  __syncthreads();

  if (a.num_partitions == 1) {
    for (int i = tid; i < b.count * d; i += kThreads) {
      const int qi = i / d, e = i - qi * d;
      const int r = qi / b.heads, h = b.head0 + qi % b.heads;
      a.out[(static_cast<int64_t>(b.row0 + r) * a.q_heads + h) * d + e] =
          s_acc[qi * kPaddedDim + e] / s_sum[qi];
    }
  } else {
    const int64_t slot =
        ((static_cast<int64_t>(blockIdx.x) * gridDim.y + blockIdx.y) * a.num_partitions +
         blockIdx.z) *
        kQ;
    for (int i = tid; i < b.count * d; i += kThreads) {
      const int qi = i / d, e = i - qi * d;
      a.partial_out[(slot + qi) * d + e] = s_acc[qi * kPaddedDim + e];
    }
    if (tid < b.count) {
      a.partial_max_sum[(slot + tid) * 2] = s_max[tid];
      a.partial_max_sum[(slot + tid) * 2 + 1] = s_sum[tid];
    }
  }
}

// Merges the partitions of each (tile, KV head × head chunk): rescales every partial by
// exp(its max - the overall max) and divides by the rescaled sum.
__global__ void __launch_bounds__(kThreads) MergePartitionsKernel(const PagedAttentionArgs a) {
  const BlockQueries b = GetBlockQueries(a);
  const int d = a.head_dim;
  const int parts = (b.pos0 + b.rows + a.partition_keys - 1) / a.partition_keys;
  const int64_t first =
      (static_cast<int64_t>(blockIdx.x) * gridDim.y + blockIdx.y) * a.num_partitions;
  for (int i = threadIdx.x; i < b.count * d; i += kThreads) {
    const int qi = i / d, e = i - qi * d;
    float overall = kNegInf;
    for (int p = 0; p < parts; ++p) {
      overall = fmaxf(overall, a.partial_max_sum[((first + p) * kQ + qi) * 2]);
    }
    float sum = 0.0f, value = 0.0f;
    for (int p = 0; p < parts; ++p) {
      const int64_t slot = (first + p) * kQ + qi;
      const float m = a.partial_max_sum[slot * 2], l = a.partial_max_sum[slot * 2 + 1];
      if (l == 0.0f) continue;  // every key of this partition was masked for this query
      const float w = expf(m - overall);
      sum += l * w;
      value += a.partial_out[slot * d + e] * w;
    }
    const int r = qi / b.heads, h = b.head0 + qi % b.heads;
    a.out[(static_cast<int64_t>(b.row0 + r) * a.q_heads + h) * d + e] = value / sum;
  }
}

template <int E>
constexpr size_t SharedBytes() {
  return sizeof(float) * (kQ * kChunk + kQ * 32 * E + 3 * kQ) + sizeof(int32_t) * kChunk;
}

template <typename T, int E>
cudaError_t Occupancy(int* blocks) {
  return cudaOccupancyMaxActiveBlocksPerMultiprocessor(blocks, PagedAttentionKernel<T, E>, kThreads,
                                                       SharedBytes<E>());
}

// head_dim ≤ 64 shares E = 2 (lanes past head_dim idle): heads of 32 or less are rare, and each
// instance costs compile time.
template <typename T>
cudaError_t OccupancyForType(int32_t head_dim, int* blocks) {
  if (head_dim <= 64) return Occupancy<T, 2>(blocks);
  if (head_dim <= 128) return Occupancy<T, 4>(blocks);
  return Occupancy<T, 8>(blocks);
}

template <typename T, int E>
cudaError_t Launch(const PagedAttentionArgs& a, cudaStream_t stream) {
  const size_t smem = SharedBytes<E>();
  const uintptr_t align = sizeof(T) * E;
  const bool vector = a.head_dim == 32 * E && reinterpret_cast<uintptr_t>(a.k_cache) % align == 0 &&
                      reinterpret_cast<uintptr_t>(a.v_cache) % align == 0;
  const dim3 grid(static_cast<unsigned>(a.num_tiles),
                  static_cast<unsigned>(a.kv_heads * a.head_chunks),
                  static_cast<unsigned>(a.num_partitions));
  PagedAttentionKernel<T, E><<<grid, kThreads, smem, stream>>>(a, vector);
  cudaError_t error = cudaGetLastError();
  if (error != cudaSuccess || a.num_partitions == 1) return error;
  MergePartitionsKernel<<<dim3(grid.x, grid.y), kThreads, 0, stream>>>(a);
  return cudaGetLastError();
}

template <typename T>
cudaError_t LaunchForType(const PagedAttentionArgs& a, cudaStream_t stream) {
  if (a.head_dim <= 64) return Launch<T, 2>(a, stream);
  if (a.head_dim <= 128) return Launch<T, 4>(a, stream);
  return Launch<T, 8>(a, stream);
}

}  // namespace

cudaError_t PagedAttentionBlocksPerSm(Storage cache_type, int32_t head_dim, int* blocks) {
  return DispatchStorage(
      cache_type, [&](auto tag) { return OccupancyForType<decltype(tag)>(head_dim, blocks); });
}

cudaError_t LaunchPagedAttention(const PagedAttentionArgs& args, cudaStream_t stream) {
  if (args.num_tiles <= 0 || args.head_dim <= 0) return cudaSuccess;
  if (args.head_dim > kAttentionMaxHeadDim) return cudaErrorInvalidValue;
  return DispatchStorage(args.cache_type,
                         [&](auto tag) { return LaunchForType<decltype(tag)>(args, stream); });
}

}  // namespace loom::kernels::cuda::internal
