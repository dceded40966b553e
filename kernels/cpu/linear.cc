// Linear layer: out = x · wᵀ (+ bias), with f32, bf16 or f16 weights and f32 activations.
//
// f32 weights go straight to OpenBLAS. 16-bit weights (bf16, or f16 widened with F16C) take one
// of two paths, picked by the number of activation rows (tools/bench_kernels.cc measures both):
//  - few rows (decode): a streaming AVX2 kernel reads each weight row once, widens it to f32 in
//    registers and accumulates against every activation row while the row is in L1. Decode is
//    bound by weight bytes, so reading half the bytes of an f32 copy is the whole point.
//  - many rows (prefill): compute dominates, so blocks of weight rows are widened into a scratch
//    buffer and handed to sgemm, whose blocking beats a hand-written loop.
// Both paths accumulate in f32 with FMA; neither rounds the activations to bf16.
#include <cblas.h>
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "kernels/checks.h"
#include "kernels/cpu/linear16.h"
#include "kernels/cpu/cpu_kernels.h"

namespace loom::kernels {
namespace {

// Weight rows widened per sgemm call on the prefill path: 128 rows of K=1024 are 512 KiB of f32,
// enough for sgemm to reach full speed and small enough to stay in a core's L2.
constexpr int64_t kPrefillBlockRows = 128;

// 8 bf16 values → 8 f32 values: bf16 is the top half of an f32, so widen and shift.
inline __m256 LoadBf16x8(const uint16_t* p) {
  const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(raw), 16));
}

// 8 f16 values → 8 f32 values (F16C: exact).
inline __m256 LoadF16x8(const uint16_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

// How one 16-bit weight format widens: eight at a time in registers, or one at a time.
struct Bf16Weights {
  static __m256 Load8(const uint16_t* p) { return LoadBf16x8(p); }
  static float One(uint16_t v) { return BF16ToF32(v); }
};
struct F16Weights {
  static __m256 Load8(const uint16_t* p) { return LoadF16x8(p); }
  static float One(uint16_t v) { return _cvtsh_ss(v); }
};

inline float HorizontalSum(__m256 v) {
  __m128 lo = _mm256_castps256_ps128(v);
  __m128 hi = _mm256_extractf128_ps(v, 1);
  lo = _mm_add_ps(lo, hi);
  lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
  lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
  return _mm_cvtss_f32(lo);
}

// out[r, n0..n0+kW) for R activation rows and kW weight rows, each weight row read once.
template <typename W, int R, int kW>
inline void StreamTile(const float* x, int64_t ldx, const uint16_t* w, int64_t K, float* out,
                       int64_t ldo) {
  __m256 acc[kW][R];
  for (int j = 0; j < kW; ++j)
    for (int r = 0; r < R; ++r) acc[j][r] = _mm256_setzero_ps();
  int64_t k = 0;
  for (; k + 8 <= K; k += 8) {
    __m256 wv[kW];
    for (int j = 0; j < kW; ++j) wv[j] = W::Load8(w + j * K + k);
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

// All M rows against weight rows [n0, n1), activation rows taken four at a time.
template <typename W, int kW>
inline void StreamRows(const float* x, int64_t M, const uint16_t* w, int64_t K, float* out,
                       int64_t N, int64_t n) {
  const uint16_t* wn = w + n * K;
  int64_t m = 0;
  for (; m + 4 <= M; m += 4) StreamTile<W, 4, kW>(x + m * K, K, wn, K, out + m * N + n, N);
  switch (M - m) {
    case 3:
      StreamTile<W, 3, kW>(x + m * K, K, wn, K, out + m * N + n, N);
      break;
    case 2:
      StreamTile<W, 2, kW>(x + m * K, K, wn, K, out + m * N + n, N);
      break;
    case 1:
      StreamTile<W, 1, kW>(x + m * K, K, wn, K, out + m * N + n, N);
      break;
    default:
      break;
  }
}

// out[M, n] (row stride ldo) = x[M, K] · w[n, K]ᵀ through BLAS.
void Sgemm(const float* x, int64_t M, const float* w, int64_t n, int64_t K, float* out,
           int64_t ldo) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(M), static_cast<int>(n),
              static_cast<int>(K), 1.0f, x, static_cast<int>(K), w, static_cast<int>(K), 0.0f, out,
              static_cast<int>(ldo));
}

// Runs fn(n_begin, n_end) over slices of the N output columns. OpenMP's threads and OpenBLAS's
// own pool fight for the cores when both are active: each spins after its work, so the other's
// threads wait for a scheduler tick (measured: 10x slowdowns on 2 cores). When OpenBLAS is
// single-threaded (kernels::SetNumThreads should keep it so), the columns are split over the
// OpenMP threads and each calls the single-threaded BLAS on its own slice; otherwise one call
// covers everything and OpenBLAS parallelises inside it.
template <typename Fn>
void ForEachColumnSlice(int64_t M, int64_t N, int64_t K, Fn fn) {
  const int threads = omp_get_max_threads();
  // Below ~1 MFLOP per thread the fork costs more than it saves.
  const bool split = threads > 1 && openblas_get_num_threads() == 1 && !omp_in_parallel() &&
                     M * N * K >= int64_t{threads} * (int64_t{1} << 19) && N >= 32;
  if (!split) {
    fn(0, N);
    return;
  }
#pragma omp parallel num_threads(threads)
  {
    const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
    // Slices of whole 16-row panels keep sgemm's micro-kernel on full tiles.
    const int64_t panels = (N + 15) / 16;
    const int64_t begin = std::min(N, panels * t / nt * 16);
    const int64_t end = std::min(N, panels * (t + 1) / nt * 16);
    if (begin < end) fn(begin, end);
  }
}

}  // namespace

namespace internal {

namespace {

template <typename W>
void Streaming(const float* x, int64_t M, const uint16_t* w, int64_t N, int64_t K, float* out) {
  const int64_t pairs = N / 2;
  // Static chunks keep each thread on one contiguous stretch of weights (prefetcher-friendly);
  // tiny matrices stay on one thread so the fork costs nothing.
  const bool parallel = N * K >= (int64_t{1} << 16);
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t p = 0; p < pairs; ++p) StreamRows<W, 2>(x, M, w, K, out, N, 2 * p);
  if (N % 2 != 0) StreamRows<W, 1>(x, M, w, K, out, N, N - 1);
}

template <typename W>
void Blocked(const float* x, int64_t M, const uint16_t* w, int64_t N, int64_t K, float* out) {
  ForEachColumnSlice(M, N, K, [&](int64_t n_begin, int64_t n_end) {
    const int64_t block = std::min(n_end - n_begin, kPrefillBlockRows);
    std::vector<float> scratch(static_cast<size_t>(block * K));
    for (int64_t n0 = n_begin; n0 < n_end; n0 += block) {
      const int64_t nb = std::min(block, n_end - n0);
      const uint16_t* src = w + n0 * K;
      float* dst = scratch.data();
      const int64_t count = nb * K;
      int64_t j = 0;
      for (; j + 8 <= count; j += 8) _mm256_storeu_ps(dst + j, W::Load8(src + j));
      for (; j < count; ++j) dst[j] = W::One(src[j]);
      Sgemm(x, M, dst, nb, K, out + n0, N);
    }
  });
}

}  // namespace

void Linear16Streaming(DType dtype, const float* x, int64_t M, const uint16_t* w, int64_t N,
                       int64_t K, float* out) {
  if (dtype == DType::kF16) {
    Streaming<F16Weights>(x, M, w, N, K, out);
  } else {
    Streaming<Bf16Weights>(x, M, w, N, K, out);
  }
}

void Linear16Blocked(DType dtype, const float* x, int64_t M, const uint16_t* w, int64_t N,
                     int64_t K, float* out) {
  if (dtype == DType::kF16) {
    Blocked<F16Weights>(x, M, w, N, K, out);
  } else {
    Blocked<Bf16Weights>(x, M, w, N, K, out);
  }
}

}  // namespace internal

absl::Status cpu::Linear(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& out) {
  LOOM_RETURN_IF_ERROR(internal::CheckLinear(x, w, bias, out));
  const int64_t M = x.size(0), K = x.size(1), N = w.size(0);
  if (M == 0 || N == 0) return absl::OkStatus();
  const float* xp = x.data<float>();
  float* op = out.data<float>();
  if (K == 0) {
    std::fill(op, op + M * N, 0.0f);
  } else if (w.dtype() == DType::kF32) {
    const float* wp = w.data<float>();
    ForEachColumnSlice(M, N, K, [&](int64_t n0, int64_t n1) {
      Sgemm(xp, M, wp + n0 * K, n1 - n0, K, op + n0, N);
    });
  } else if (M <= internal::kLinearStreamingMaxRows) {
    internal::Linear16Streaming(w.dtype(), xp, M, w.data<uint16_t>(), N, K, op);
  } else {
    internal::Linear16Blocked(w.dtype(), xp, M, w.data<uint16_t>(), N, K, op);
  }
  if (bias != nullptr) {
    const float* b = bias->data<float>();
    for (int64_t m = 0; m < M; ++m) {
      float* row = op + m * N;
      for (int64_t n = 0; n < N; ++n) row[n] += b[n];
    }
  }
  return absl::OkStatus();
}

}  // namespace loom::kernels
