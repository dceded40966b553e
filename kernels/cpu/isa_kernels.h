// The inner loops that differ per instruction set, one table of function pointers per variant
// (kernels/cpu/cpu_isa.h). linear.cc and paged_attention.cc keep the threading, the blocking and
// the BLAS calls, and call through ActiveKernels() once per slice of work, never per element.
//
// Each table lives in its own translation unit, compiled with that variant's flags: isa_avx2.cc,
// isa_avx512.cc, isa_avx512bf16.cc, isa_amx.cc. Those files include only this header, the C++
// library, <immintrin.h> and isa_avx512-inl.h, and keep every function in an anonymous
// namespace: an inline function or template with external linkage compiled there could become
// the copy the linker keeps for the whole program, and then run AVX-512 code on a CPU without
// it.
#ifndef LOOM_KERNELS_CPU_ISA_KERNELS_H_
#define LOOM_KERNELS_CPU_ISA_KERNELS_H_

#include <cstdint>

namespace loom::kernels::internal {

// One Linear call: out[M, N] = x[M, K] · w[N, K]ᵀ, all contiguous, M, N, K > 0.
struct LinearSlice {
  const float* x;
  const float* packed;  // x rearranged by the table's pack, for the kernels marked `packed`
  const void* w;        // float, or the bits of bf16 / f16
  float* out;
  int64_t M, N, K;
};

// pack rearranges whole blocks of this many columns; the K % kPackBlock columns after them are
// read from x itself.
inline constexpr int64_t kPackBlock = 32;
// Floats the AVX-512 tables' pack writes for M rows of K columns: one per activation.
inline int64_t PackedFloats(int64_t M, int64_t K) { return M * (K / kPackBlock * kPackBlock); }
// Row counts at and below which the FMA kernels beat sgemm. With AVX2, f32 weights reach sgemm
// without a widening copy, so it catches up sooner: on one core, Qwen3-0.6B's projections
// stream at 1.8x sgemm's speed with 1 row, 1.2x with 8 and 0.75x with 16. The AVX-512 loops,
// prefetching, stream f32 weights faster than sgemm up to 16 rows as well (batch-16 decode of
// that model on 2 cores: 64.9 against 57.6 tok/s).
inline constexpr int64_t kLinearStreamingMaxRows = 16;
inline constexpr int64_t kAvx2F32StreamingMaxRows = 8;
// LinearKernel::max_rows of a kernel that beats sgemm at every row count.
inline constexpr int64_t kAnyRows = INT64_MAX;

// One weight format's inner loop for Linear.
struct LinearKernel {
  // out[m, n] for every m < M and n in [n_begin, n_end), each weight row read once.
  void (*rows)(const LinearSlice& s, int64_t n_begin, int64_t n_end);
  // Linear calls `rows` for up to this many activation rows; above, sgemm (16-bit weights are
  // widened to f32 block by block for it).
  int64_t max_rows;
  // Whether `rows` reads the activations as the table's pack left them (when K >= kPackBlock).
  bool packed;
};

// One online-softmax chunk of attention for a group of query heads (paged_attention.cc).
struct AttentionChunk {
  const float* q;  // `group` query heads, q_head_stride apart
  int64_t q_head_stride;
  const float* k_cache;
  const float* v_cache;
  const int64_t* offsets;  // key j of query head h: k_cache + offsets[j] + (h / per_kv) * head_dim
  int64_t keys;
  int64_t group;
  int64_t per_kv;  // query heads per KV head
  int64_t head_dim;
  float scale;
  float* scores;  // [group][score_stride]
  int64_t score_stride;
  float* acc;  // [group][head_dim]
};

struct IsaKernels {
  LinearKernel linear_f32, linear_bf16, linear_f16;
  // Fills packed_floats(M, K) floats at `packed` for the kernels marked `packed`; both null when
  // none is.
  void (*pack)(const float* x, int64_t M, int64_t K, float* packed);
  int64_t (*packed_floats)(int64_t M, int64_t K);
  // The linear kernels are handed stretches of weight rows that start at multiples of this.
  int64_t row_group;
  // dst[i] = src[i] widened to f32, for i < n.
  void (*widen_bf16)(const uint16_t* src, int64_t n, float* dst);
  void (*widen_f16)(const uint16_t* src, int64_t n, float* dst);
  // scores[h][j] = scale · (q_h · key_j), for h < group and j < keys.
  void (*attention_scores)(const AttentionChunk& c);
  // acc[h] += Σ_j scores[h][j] · value_j, for h < group.
  void (*attention_values)(const AttentionChunk& c);
};

// The tables each isa_*.cc defines; the AVX-512 ones exist when the compiler took their flags
// (LOOM_HAVE_AVX512_KERNELS, LOOM_HAVE_AVX512BF16_KERNELS,
// LOOM_HAVE_AMX_KERNELS).
extern const IsaKernels kAvx2Kernels;
extern const IsaKernels kAvx512Kernels;
extern const IsaKernels kAvx512Bf16Kernels;
extern const IsaKernels kAmxKernels;

// The table of ActiveIsa() (kernels/cpu/cpu_isa.h). A load of one pointer after the first call.
const IsaKernels& ActiveKernels();

}  // namespace loom::kernels::internal

#endif  // LOOM_KERNELS_CPU_ISA_KERNELS_H_
