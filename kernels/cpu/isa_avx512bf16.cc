// The AVX-512 kernels with bf16 weights multiplied by vdpbf16ps (AVX-512 BF16), which takes 32
// bf16 pairs per instruction with no widening at all. Compiled with the AVX-512 flags plus
// -mavx512bf16; run only where the CPU has it (cpu_isa.cc).
//
// vdpbf16ps multiplies bf16 by bf16, but Linear's activations are f32 and are not to be rounded
// to bf16 (linear.cc). Each activation is therefore split into two bf16 values, hi = bf16(x) and
// lo = bf16(x - hi), whose sum carries 16 bits of x's 24 (relative error about 2^-17, against
// bf16's 2^-9); w · x = w · hi + w · lo, two instructions per 32 weights and activation row.
//
// That is as many instructions as isa_avx512-inl.h's shift-and-mask FMAs, and on the Xeon this
// was measured on vdpbf16ps runs slower than FMA: one core, Qwen3-0.6B's projections from DRAM,
// 0.88x kAvx512's speed with 1 activation row and 0.65x with 8. So it is never the default
// (cpu_isa.h: DefaultIsa); it stays selectable to measure on CPUs where vdpbf16ps is faster.
#include "kernels/cpu/isa_avx512-inl.h"

namespace loom::kernels::internal {
namespace {

// Per block of 32 columns: 32 bf16 hi values, then 32 bf16 lo values (64 bytes each, so a
// block takes the 32 floats' room PackedFloats counts).
void PackHiLo(const float* x, int64_t M, int64_t K, float* packed) {
  const int64_t k32 = K / kPackBlock * kPackBlock;
  for (int64_t m = 0; m < M; ++m) {
    const float* row = x + m * K;
    float* dst = packed + m * k32;
    for (int64_t k = 0; k < k32; k += kPackBlock) {
      const __m512 x0 = _mm512_loadu_ps(row + k), x1 = _mm512_loadu_ps(row + k + 16);
      // Rounds to nearest even; the first operand fills the upper 16 values.
      const __m512i hi = reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(x1, x0));
      const __m512 lo0 = _mm512_sub_ps(x0, Bf16Weights::Widen(_mm512_castsi512_si256(hi)));
      const __m512 lo1 = _mm512_sub_ps(x1, Bf16Weights::Widen(_mm512_extracti64x4_epi64(hi, 1)));
      const __m512i lo = reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(lo1, lo0));
      _mm512_storeu_si512(dst + k, hi);
      _mm512_storeu_si512(dst + k + 16, lo);
    }
  }
}

template <int R, int kW>
void DotBf16Tile(const LinearSlice& s, int64_t m, int64_t n) {
  const int64_t K = s.K, k32 = K / kPackBlock * kPackBlock;
  const uint16_t* w = static_cast<const uint16_t*>(s.w) + n * K;
  const float* packed = s.packed + m * k32;
  // The hi and lo products accumulate apart: two independent chains per output.
  __m512 hi[kW][R], lo[kW][R];
  for (int j = 0; j < kW; ++j) {
    for (int r = 0; r < R; ++r) hi[j][r] = lo[j][r] = _mm512_setzero_ps();
  }
  for (int64_t k = 0; k < k32; k += kPackBlock) {
    __m512bh wv[kW];
    for (int j = 0; j < kW; ++j)
      wv[j] = reinterpret_cast<__m512bh>(_mm512_loadu_si512(w + j * K + k));
    for (int r = 0; r < R; ++r) {
      const __m512bh xh = reinterpret_cast<__m512bh>(_mm512_loadu_si512(packed + r * k32 + k));
      const __m512bh xl = reinterpret_cast<__m512bh>(_mm512_loadu_si512(packed + r * k32 + k + 16));
      for (int j = 0; j < kW; ++j) {
        hi[j][r] = _mm512_dpbf16_ps(hi[j][r], wv[j], xh);
        lo[j][r] = _mm512_dpbf16_ps(lo[j][r], wv[j], xl);
      }
    }
  }
  // The last K % 32 columns in f32, from x itself.
  AccumulateInOrder<Bf16Weights, R, kW>(hi, s.x + m * K, K, w, K, k32);
  for (int j = 0; j < kW; ++j) {
    for (int r = 0; r < R; ++r) {
      s.out[(m + r) * s.N + n + j] = _mm512_reduce_add_ps(_mm512_add_ps(hi[j][r], lo[j][r]));
    }
  }
}

struct DotBf16 {
  static constexpr int kRowsWithFour = 2;  // hi and lo accumulators: twice the registers
  template <int R, int kW>
  static void Tile(const LinearSlice& s, int64_t m, int64_t n) {
    DotBf16Tile<R, kW>(s, m, n);
  }
};

}  // namespace

constinit const IsaKernels kAvx512Bf16Kernels = {
    .linear_f32 = {LinearRows<InOrder<F32Weights>>, kLinearStreamingMaxRows, false},
    .linear_bf16 = {LinearRows<DotBf16>, kLinearStreamingMaxRows, true},
    .linear_f16 = {LinearRows<InOrder<F16Weights>>, kLinearStreamingMaxRows, false},
    .pack = PackHiLo,
    .packed_floats = PackedFloats,
    .row_group = 4,
    .widen_bf16 = Widen<Bf16Weights>,
    .widen_f16 = Widen<F16Weights>,
    .attention_scores = AttentionScores,
    .attention_values = AttentionValues,
};

}  // namespace loom::kernels::internal
