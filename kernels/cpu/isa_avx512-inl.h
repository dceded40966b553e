// The AVX-512 F/BW/VL kernels, included by isa_avx512.cc and isa_avx512bf16.cc only: each gets
// its own copy, compiled with its own flags, in an anonymous namespace (isa_kernels.h says why
// nothing here may have external linkage). Against AVX2 they take 16 floats per instruction,
// finish rows whose length is no multiple of 16 with masked loads instead of scalar loops, and
// widen bf16 weights with one shift or one mask per 16 values (see PackEvenOdd).
#ifndef LOOM_KERNELS_CPU_ISA_AVX512_INL_H_
#define LOOM_KERNELS_CPU_ISA_AVX512_INL_H_

#include <immintrin.h>

#include "kernels/cpu/isa_kernels.h"

namespace loom::kernels::internal {
namespace {  // NOLINT(build/namespaces): one copy per including file, by design

inline __mmask16 FirstLanes(int64_t n) {
  return static_cast<__mmask16>(n >= 16 ? 0xffff : (1u << n) - 1u);
}

// How one weight format widens, 16 values at a time (the first `mask` lanes for Load16Masked).
struct Bf16Weights {
  using T = uint16_t;
  static __m512 Widen(__m256i raw) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(raw), 16));
  }
  static __m512 Load16(const uint16_t* p) {
    return Widen(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  static __m512 Load16Masked(const uint16_t* p, __mmask16 mask) {
    return Widen(_mm256_maskz_loadu_epi16(mask, p));
  }
};
struct F16Weights {
  using T = uint16_t;
  static __m512 Load16(const uint16_t* p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  static __m512 Load16Masked(const uint16_t* p, __mmask16 mask) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask, p));
  }
};
struct F32Weights {
  using T = float;
  static __m512 Load16(const float* p) { return _mm512_loadu_ps(p); }
  static __m512 Load16Masked(const float* p, __mmask16 mask) {
    return _mm512_maskz_loadu_ps(mask, p);
  }
};

// Bytes ahead of the weights being read that AccumulateInOrder prefetches on every row by
// default: the hardware prefetcher alone left f16 batch-1 decode at 0.85x of these loops with
// it (Qwen3-0.6B shape, 2 cores, 16.0 vs 18.8 tok/s).
constexpr int64_t kPrefetchAhead = 1024;

// acc[j][r] += w_j[k0, K) · x_r[k0, K) for R activation rows (ldx apart) and kW weight rows.
// Prefetches `ahead` + (w_j's offset) for each weight row read: by default kPrefetchAhead bytes
// further along the same rows.
template <typename W, int R, int kW>
inline void AccumulateInOrder(__m512 (&acc)[kW][R], const float* x, int64_t ldx,
                              const typename W::T* w, int64_t K, int64_t k0,
                              const char* ahead = nullptr) {
  if (ahead == nullptr) ahead = reinterpret_cast<const char*>(w) + kPrefetchAhead;
  int64_t k = k0;
  for (; k + 16 <= K; k += 16) {
    __m512 wv[kW];
    for (int j = 0; j < kW; ++j) {
      const int64_t offset = static_cast<int64_t>((j * K + k) * sizeof(typename W::T));
      _mm_prefetch(ahead + offset, _MM_HINT_T0);  // never faults, even past the weights
      wv[j] = W::Load16(w + j * K + k);
    }
    for (int r = 0; r < R; ++r) {
      const __m512 xv = _mm512_loadu_ps(x + r * ldx + k);
      for (int j = 0; j < kW; ++j) acc[j][r] = _mm512_fmadd_ps(wv[j], xv, acc[j][r]);
    }
  }
  if (k < K) {
    const __mmask16 mask = FirstLanes(K - k);
    __m512 wv[kW];
    for (int j = 0; j < kW; ++j) wv[j] = W::Load16Masked(w + j * K + k, mask);
    for (int r = 0; r < R; ++r) {
      const __m512 xv = _mm512_maskz_loadu_ps(mask, x + r * ldx + k);
      for (int j = 0; j < kW; ++j) acc[j][r] = _mm512_fmadd_ps(wv[j], xv, acc[j][r]);
    }
  }
}

// A tile of out[R rows, kW columns] (row stride ldo) from weight rows in their own format.
// The first tile of the weight rows (m == 0) reads them from memory and prefetches further
// along them; the later tiles find them in cache and prefetch the next kW rows instead, so the
// memory stream goes on while they compute.
template <typename W, int R, int kW>
void InOrderTile(const LinearSlice& s, int64_t m, const float* x, const typename W::T* w,
                 float* out) {
  __m512 acc[kW][R];
  for (int j = 0; j < kW; ++j)
    for (int r = 0; r < R; ++r) acc[j][r] = _mm512_setzero_ps();
  const char* ahead = m == 0 ? nullptr : reinterpret_cast<const char*>(w + kW * s.K);
  AccumulateInOrder<W, R, kW>(acc, x, s.K, w, s.K, 0, ahead);
  for (int j = 0; j < kW; ++j)
    for (int r = 0; r < R; ++r) out[r * s.N + j] = _mm512_reduce_add_ps(acc[j][r]);
}

// bf16 weights without conversion instructions: a 32-bit lane holding weights 2i and 2i+1 is
// weight 2i as an f32 once shifted left by 16, and weight 2i+1 once its low half is masked off.
// The activations are rearranged to match, once per call (PackEvenOdd): per block of 32 columns,
// the 16 even ones, then the 16 odd ones.
void PackEvenOdd(const float* x, int64_t M, int64_t K, float* packed) {
  const int64_t k32 = K / kPackBlock * kPackBlock;
  const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
  const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
  for (int64_t m = 0; m < M; ++m) {
    const float* row = x + m * K;
    float* dst = packed + m * k32;
    for (int64_t k = 0; k < k32; k += kPackBlock) {
      const __m512 lo = _mm512_loadu_ps(row + k), hi = _mm512_loadu_ps(row + k + 16);
      _mm512_storeu_ps(dst + k, _mm512_permutex2var_ps(lo, even, hi));
      _mm512_storeu_ps(dst + k + 16, _mm512_permutex2var_ps(lo, odd, hi));
    }
  }
}

template <int R, int kW>
void EvenOddTile(const LinearSlice& s, int64_t m, int64_t n) {
  const int64_t K = s.K, k32 = K / kPackBlock * kPackBlock;
  const uint16_t* w = static_cast<const uint16_t*>(s.w) + n * K;
  const float* packed = s.packed + m * k32;
  const __m512i high_half = _mm512_set1_epi32(static_cast<int>(0xffff0000u));
  // Even and odd products accumulate apart: two independent FMA chains per output.
  __m512 even[kW][R], odd[kW][R];
  for (int j = 0; j < kW; ++j) {
    for (int r = 0; r < R; ++r) even[j][r] = odd[j][r] = _mm512_setzero_ps();
  }
  for (int64_t k = 0; k < k32; k += kPackBlock) {
    __m512 we[kW], wo[kW];
    for (int j = 0; j < kW; ++j) {
      const __m512i raw = _mm512_loadu_si512(w + j * K + k);
      we[j] = _mm512_castsi512_ps(_mm512_slli_epi32(raw, 16));
      wo[j] = _mm512_castsi512_ps(_mm512_and_si512(raw, high_half));
    }
    for (int r = 0; r < R; ++r) {
      const __m512 xe = _mm512_loadu_ps(packed + r * k32 + k);
      const __m512 xo = _mm512_loadu_ps(packed + r * k32 + k + 16);
      for (int j = 0; j < kW; ++j) {
        even[j][r] = _mm512_fmadd_ps(we[j], xe, even[j][r]);
        odd[j][r] = _mm512_fmadd_ps(wo[j], xo, odd[j][r]);
      }
    }
  }
  AccumulateInOrder<Bf16Weights, R, kW>(even, s.x + m * K, K, w, K, k32);
  for (int j = 0; j < kW; ++j) {
    for (int r = 0; r < R; ++r) {
      s.out[(m + r) * s.N + n + j] = _mm512_reduce_add_ps(_mm512_add_ps(even[j][r], odd[j][r]));
    }
  }
}

// The tile functions a row loop calls: Tile<R, kW>(s, m, n) writes out[m.., n..].
template <typename W>
struct InOrder {
  // Weight rows a tile of four activation rows can take: 16 accumulators, 4 weight vectors and
  // one activation vector fit the 32 registers.
  static constexpr int kRowsWithFour = 4;
  template <int R, int kW>
  static void Tile(const LinearSlice& s, int64_t m, int64_t n) {
    InOrderTile<W, R, kW>(s, m, s.x + m * s.K, static_cast<const typename W::T*>(s.w) + n * s.K,
                          s.out + m * s.N + n);
  }
};
struct EvenOdd {
  static constexpr int kRowsWithFour = 2;  // even and odd accumulators: twice the registers
  template <int R, int kW>
  static void Tile(const LinearSlice& s, int64_t m, int64_t n) {
    EvenOddTile<R, kW>(s, m, n);
  }
};

// All M rows against weight rows [n, n + kW), activation rows four at a time.
template <typename Kernel, int kW>
void TileRows(const LinearSlice& s, int64_t n) {
  int64_t m = 0;
  for (; m + 4 <= s.M; m += 4) Kernel::template Tile<4, kW>(s, m, n);
  switch (s.M - m) {
    case 3:
      Kernel::template Tile<3, kW>(s, m, n);
      break;
    case 2:
      Kernel::template Tile<2, kW>(s, m, n);
      break;
    case 1:
      Kernel::template Tile<1, kW>(s, m, n);
      break;
    default:
      break;
  }
}

// Weight rows [n_begin, n_end) in groups of kW. With one or two activation rows the loop is bound
// by how many weight rows stream at once, so it takes four; with more, as many as leave
// registers for the accumulators (Kernel::kRowsWithFour): each weight row loaded serves every
// activation row of the tile, and each activation row every weight row.
template <typename Kernel>
void LinearRows(const LinearSlice& s, int64_t n_begin, int64_t n_end) {
  int64_t n = n_begin;
  if (s.M <= 2 || Kernel::kRowsWithFour == 4) {
    for (; n + 4 <= n_end; n += 4) TileRows<Kernel, 4>(s, n);
  }
  for (; n + 2 <= n_end; n += 2) TileRows<Kernel, 2>(s, n);
  if (n < n_end) TileRows<Kernel, 1>(s, n);
}

template <typename W>
void Widen(const uint16_t* src, int64_t n, float* dst) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(dst + i, W::Load16(src + i));
  if (i < n) {
    const __mmask16 mask = FirstLanes(n - i);
    _mm512_mask_storeu_ps(dst + i, mask, W::Load16Masked(src + i, mask));
  }
}

float Dot(const float* a, const float* b, int64_t n) {
  __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc0);
    acc1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), acc1);
  }
  for (; i < n; i += 16) {
    const __mmask16 mask = FirstLanes(n - i);
    acc0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask, a + i), _mm512_maskz_loadu_ps(mask, b + i),
                           acc0);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
}

// y += p · x over n floats.
void Axpy(float* y, float p, const float* x, int64_t n) {
  const __m512 vp = _mm512_set1_ps(p);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    _mm512_storeu_ps(y + i, _mm512_fmadd_ps(vp, _mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i)));
  }
  if (i < n) {
    const __mmask16 mask = FirstLanes(n - i);
    const __m512 yv = _mm512_maskz_loadu_ps(mask, y + i);
    _mm512_mask_storeu_ps(y + i, mask, _mm512_fmadd_ps(vp, _mm512_maskz_loadu_ps(mask, x + i), yv));
  }
}

void AttentionScores(const AttentionChunk& c) {
  const int64_t d = c.head_dim;
  for (int64_t j = 0; j < c.keys; ++j) {
    for (int64_t h = 0; h < c.group; ++h) {
      const float* key = c.k_cache + c.offsets[j] + (h / c.per_kv) * d;
      c.scores[h * c.score_stride + j] = Dot(c.q + h * c.q_head_stride, key, d) * c.scale;
    }
  }
}

void AttentionValues(const AttentionChunk& c) {
  const int64_t d = c.head_dim;
  for (int64_t j = 0; j < c.keys; ++j) {
    for (int64_t h = 0; h < c.group; ++h) {
      const float* value = c.v_cache + c.offsets[j] + (h / c.per_kv) * d;
      Axpy(c.acc + h * d, c.scores[h * c.score_stride + j], value, d);
    }
  }
}

}  // namespace
}  // namespace loom::kernels::internal

#endif  // LOOM_KERNELS_CPU_ISA_AVX512_INL_H_
