// The AVX2/FMA/F16C kernels: the baseline every x86 machine Loom runs on has (AMD Zen 3 among
// them), and the reference the AVX-512 variants are compared with. Compiled with
// -mavx2 -mfma -mf16c; see isa_kernels.h for why nothing here has external linkage but the table.
#include <immintrin.h>

#include "kernels/cpu/isa_kernels.h"

namespace loom::kernels::internal {
namespace {

// How one weight format widens: eight at a time in registers, or one at a time.
struct Bf16Weights {
  using T = uint16_t;
  // bf16 is the top half of an f32, so widen and shift.
  static __m256 Load8(const uint16_t* p) {
    const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(raw), 16));
  }
  static float One(uint16_t v) {
    const uint32_t bits = static_cast<uint32_t>(v) << 16;
    float f;
    __builtin_memcpy(&f, &bits, sizeof(f));
    return f;
  }
};
struct F16Weights {
  using T = uint16_t;
  static __m256 Load8(const uint16_t* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static float One(uint16_t v) { return _cvtsh_ss(v); }
};
struct F32Weights {
  using T = float;
  static __m256 Load8(const float* p) { return _mm256_loadu_ps(p); }
  static float One(float v) { return v; }
};

inline float HorizontalSum(__m256 v) {
  __m128 lo = _mm256_castps256_ps128(v);
  const __m128 hi = _mm256_extractf128_ps(v, 1);
  lo = _mm_add_ps(lo, hi);
  lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
  lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
  return _mm_cvtss_f32(lo);
}

// out[r * ldo + j] for R activation rows and kW weight rows, each weight row read once and
// widened in registers while it is in L1.
template <typename W, int R, int kW>
void StreamTile(const float* x, int64_t ldx, const typename W::T* w, int64_t K, float* out,
                int64_t ldo) {
  __m256 acc[kW][R];
  for (int j = 0; j < kW; ++j)
    for (int r = 0; r < R; ++r) acc[j][r] = _mm256_setzero_ps();
  int64_t k = 0;
  for (; k + 8 <= K; k += 8) {
    __m256 wv[kW];
    for (int j = 0; j < kW; ++j) {
      // A kilobyte ahead on every row, as in isa_avx512-inl.h.
      _mm_prefetch(reinterpret_cast<const char*>(w + j * K + k) + 1024, _MM_HINT_T0);
      wv[j] = W::Load8(w + j * K + k);
    }
    for (int r = 0; r < R; ++r) {
      const __m256 xv = _mm256_loadu_ps(x + r * ldx + k);
      for (int j = 0; j < kW; ++j) acc[j][r] = _mm256_fmadd_ps(wv[j], xv, acc[j][r]);
    }
  }
  for (int j = 0; j < kW; ++j) {
    for (int r = 0; r < R; ++r) {
      float s = HorizontalSum(acc[j][r]);
      for (int64_t kk = k; kk < K; ++kk) s += W::One(w[j * K + kk]) * x[r * ldx + kk];
      out[r * ldo + j] = s;
    }
  }
}

// All M rows against weight rows [n, n + kW), activation rows taken four at a time.
template <typename W, int kW>
void StreamRows(const LinearSlice& s, int64_t n) {
  const auto* w = static_cast<const typename W::T*>(s.w) + n * s.K;
  const int64_t M = s.M, N = s.N, K = s.K;
  int64_t m = 0;
  for (; m + 4 <= M; m += 4) StreamTile<W, 4, kW>(s.x + m * K, K, w, K, s.out + m * N + n, N);
  switch (M - m) {
    case 3:
      StreamTile<W, 3, kW>(s.x + m * K, K, w, K, s.out + m * N + n, N);
      break;
    case 2:
      StreamTile<W, 2, kW>(s.x + m * K, K, w, K, s.out + m * N + n, N);
      break;
    case 1:
      StreamTile<W, 1, kW>(s.x + m * K, K, w, K, s.out + m * N + n, N);
      break;
    default:
      break;
  }
}

template <typename W>
void LinearRows(const LinearSlice& s, int64_t n_begin, int64_t n_end) {
  int64_t n = n_begin;
  for (; n + 2 <= n_end; n += 2) StreamRows<W, 2>(s, n);
  if (n < n_end) StreamRows<W, 1>(s, n);
}

template <typename W>
void Widen(const uint16_t* src, int64_t n, float* dst) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, W::Load8(src + i));
  for (; i < n; ++i) dst[i] = W::One(src[i]);
}

float Dot(const float* a, const float* b, int64_t n) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
  }
  if (i + 8 <= n) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
    i += 8;
  }
  float r = HorizontalSum(_mm256_add_ps(acc0, acc1));
  for (; i < n; ++i) r += a[i] * b[i];
  return r;
}

// y += p · x over n floats.
void Axpy(float* y, float p, const float* x, int64_t n) {
  const __m256 vp = _mm256_set1_ps(p);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(y + i, _mm256_fmadd_ps(vp, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
  }
  for (; i < n; ++i) y[i] += p * x[i];
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

constinit const IsaKernels kAvx2Kernels = {
    .linear_f32 = {LinearRows<F32Weights>, kAvx2F32StreamingMaxRows, false},
    .linear_bf16 = {LinearRows<Bf16Weights>, kLinearStreamingMaxRows, false},
    .linear_f16 = {LinearRows<F16Weights>, kLinearStreamingMaxRows, false},
    .pack = nullptr,
    .packed_floats = nullptr,
    .row_group = 4,
    .widen_bf16 = Widen<Bf16Weights>,
    .widen_f16 = Widen<F16Weights>,
    .attention_scores = AttentionScores,
    .attention_values = AttentionValues,
};

}  // namespace loom::kernels::internal
