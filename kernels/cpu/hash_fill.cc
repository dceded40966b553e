// FillHashUniform on the host: the arguments were checked by kernels.h's entry point. Runs of
// the region that are contiguous in the full tensor (one per outer index) are cut into chunks
// spread over the kernel threads. Each element is common/hash_uniform.h's value; with AVX2 eight
// at a time, in integer and double lanes that round exactly where the scalar code does (so the
// bits are the same: tests/kernels/hash_fill_test.cc checks them against the formula).
#include <immintrin.h>

#include <algorithm>

#include "common/dtype.h"
#include "common/hash_uniform.h"
#include "kernels/cpu/cpu_kernels.h"

namespace loom::kernels {
namespace {

constexpr int64_t kChunk = 1 << 14;

#if defined(__AVX2__)
// x * c mod 2^64 per 64-bit lane, from 32-bit products (AVX2 has no 64-bit multiply).
inline __m256i MulConst(__m256i x, uint64_t c) {
  const __m256i lo = _mm256_set1_epi64x(static_cast<int64_t>(c & 0xffffffffu));
  const __m256i hi = _mm256_set1_epi64x(static_cast<int64_t>(c >> 32));
  const __m256i low = _mm256_mul_epu32(x, lo);
  const __m256i cross = _mm256_add_epi64(_mm256_mul_epu32(_mm256_srli_epi64(x, 32), lo),
                                         _mm256_mul_epu32(x, hi));
  return _mm256_add_epi64(low, _mm256_slli_epi64(cross, 32));
}

// SplitMix64Finalize per lane.
inline __m256i Finalize(__m256i x) {
  x = _mm256_xor_si256(x, _mm256_srli_epi64(x, 30));
  x = MulConst(x, 0xbf58476d1ce4e5b9ull);
  x = _mm256_xor_si256(x, _mm256_srli_epi64(x, 27));
  x = MulConst(x, 0x94d049bb133111ebull);
  return _mm256_xor_si256(x, _mm256_srli_epi64(x, 31));
}

// An integer below 2^32 per lane as a double, exactly (2^52's mantissa trick).
inline __m256d SmallToDouble(__m256i v) {
  const __m256i magic = _mm256_set1_epi64x(0x4330000000000000ll);
  return _mm256_sub_pd(_mm256_castsi256_pd(_mm256_or_si256(v, magic)), _mm256_set1_pd(0x1p52));
}

// Four values: the state's top 53 bits as u in [0, 1), then (2u - 1) · range, rounded to float
// once, as the scalar code does (2u - 1 is exact in double).
inline __m128 Values(__m256i state, __m256d range) {
  const __m256i bits = _mm256_srli_epi64(Finalize(state), 11);
  const __m256d hi = SmallToDouble(_mm256_srli_epi64(bits, 32));
  const __m256d lo = SmallToDouble(_mm256_and_si256(bits, _mm256_set1_epi64x(0xffffffffll)));
  // hi · 2^32 + lo is below 2^53: exact, fused or not.
  const __m256d u = _mm256_mul_pd(_mm256_add_pd(_mm256_mul_pd(hi, _mm256_set1_pd(0x1p32)), lo),
                                  _mm256_set1_pd(0x1p-53));
  const __m256d centred = _mm256_sub_pd(_mm256_add_pd(u, u), _mm256_set1_pd(1.0));
  return _mm256_cvtpd_ps(_mm256_mul_pd(centred, range));
}

// Round to nearest even, as F32ToBF16 (the values are finite).
inline __m128i ToBf16(__m256 v) {
  __m256i b = _mm256_castps_si256(v);
  const __m256i odd = _mm256_and_si256(_mm256_srli_epi32(b, 16), _mm256_set1_epi32(1));
  b = _mm256_srli_epi32(_mm256_add_epi32(b, _mm256_add_epi32(_mm256_set1_epi32(0x7fff), odd)), 16);
  // Pack the 32-bit lanes' low halves: 0..3 and 4..7 are in the two 128-bit halves.
  const __m256i packed = _mm256_packus_epi32(b, b);
  return _mm256_castsi256_si128(_mm256_permute4x64_epi64(packed, 0x08));
}

// Elements [0, n) of a run whose first is full element `global`; returns how many it wrote
// (a multiple of 8), the rest is the scalar loop's.
int64_t FillVector(uint64_t key, double range, int64_t global, int64_t n, DType dtype,
                   void* out) {
  const uint64_t g = kSplitMix64Gamma;
  const uint64_t first = key + static_cast<uint64_t>(global) * g + g;  // SplitMix64's input
  __m256i a = _mm256_set_epi64x(static_cast<int64_t>(first + 3 * g),
                                static_cast<int64_t>(first + 2 * g),
                                static_cast<int64_t>(first + g), static_cast<int64_t>(first));
  __m256i b = _mm256_add_epi64(a, _mm256_set1_epi64x(static_cast<int64_t>(4 * g)));
  const __m256i step = _mm256_set1_epi64x(static_cast<int64_t>(8 * g));
  const __m256d r = _mm256_set1_pd(range);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_set_m128(Values(b, r), Values(a, r));
    if (dtype == DType::kF32) {
      _mm256_storeu_ps(static_cast<float*>(out) + i, v);
    } else if (dtype == DType::kBF16) {
      _mm_storeu_si128(reinterpret_cast<__m128i*>(static_cast<uint16_t*>(out) + i), ToBf16(v));
    } else {
      _mm_storeu_si128(reinterpret_cast<__m128i*>(static_cast<uint16_t*>(out) + i),
                       _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    }
    a = _mm256_add_epi64(a, step);
    b = _mm256_add_epi64(b, step);
  }
  return i;
}
#else
int64_t FillVector(uint64_t, double, int64_t, int64_t, DType, void*) { return 0; }
#endif

void FillRun(uint64_t key, double range, int64_t global, int64_t n, DType dtype, void* out) {
  int64_t i = FillVector(key, range, global, n, dtype, out);
  for (; i < n; ++i) {
    const float v = HashUniform(key, global + i, range);
    if (dtype == DType::kF32) {
      static_cast<float*>(out)[i] = v;
    } else {
      static_cast<uint16_t*>(out)[i] = dtype == DType::kBF16 ? F32ToBF16(v) : F32ToF16(v);
    }
  }
}

}  // namespace

absl::Status cpu::FillHashUniform(const HashFill& f, Tensor& out) {
  const int64_t run = f.rows * f.inner;  // contiguous in out and in the full tensor
  const int64_t per_run = (run + kChunk - 1) / kChunk;
  const int64_t chunks = f.outer * per_run;
  const DType dtype = out.dtype();
  char* base = static_cast<char*>(out.raw_data());
  const int64_t size = static_cast<int64_t>(DTypeSize(dtype));
#pragma omp parallel for schedule(static) if (chunks > 1)
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t o = c / per_run, begin = (c % per_run) * kChunk;
    const int64_t n = std::min(kChunk, run - begin);
    const int64_t local = o * run + begin;
    const int64_t global = (o * f.full_rows + f.start) * f.inner + begin;
    FillRun(f.key, f.range, global, n, dtype, base + local * size);
  }
  return absl::OkStatus();
}

}  // namespace loom::kernels
