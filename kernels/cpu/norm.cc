// RMSNorm and the fused residual-add variant, computed as HF does: var = mean(x²) in f32 range,
// x · rsqrt(var + eps), then · weight. The sum of squares is accumulated in double so the result
// does not depend on the vector width or the summation order.
#include <immintrin.h>

#include <cmath>
#include <cstdint>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "kernels/checks.h"
#include "kernels/cpu/cpu_kernels.h"

namespace loom::kernels {
namespace {

double SumOfSquares(const float* x, int64_t n) {
  __m256d acc0 = _mm256_setzero_pd(), acc1 = _mm256_setzero_pd();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256d a = _mm256_cvtps_pd(_mm_loadu_ps(x + i));
    const __m256d b = _mm256_cvtps_pd(_mm_loadu_ps(x + i + 4));
    acc0 = _mm256_fmadd_pd(a, a, acc0);
    acc1 = _mm256_fmadd_pd(b, b, acc1);
  }
  alignas(32) double lanes[4];
  _mm256_store_pd(lanes, _mm256_add_pd(acc0, acc1));
  double s = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
  for (; i < n; ++i) s += static_cast<double>(x[i]) * x[i];
  return s;
}

// out = in · rsqrt(mean(in²) + eps) · weight; `out` may equal `in`.
void NormalizeRow(const float* in, const float* weight, float eps, int64_t h, float* out) {
  const float var = static_cast<float>(SumOfSquares(in, h) / static_cast<double>(h));
  const float inv = 1.0f / std::sqrt(var + eps);
  for (int64_t i = 0; i < h; ++i) out[i] = weight[i] * (in[i] * inv);
}

// Threads only pay off once there is a few hundred KiB of rows to normalise.
bool WorthThreads(int64_t t, int64_t h) { return t > 1 && t * h >= (int64_t{1} << 15); }

}  // namespace

absl::Status cpu::RmsNorm(const Tensor& x, const Tensor& weight, float eps, Tensor& out) {
  LOOM_RETURN_IF_ERROR(internal::CheckRmsNorm(x, weight, eps, out));
  const int64_t t = x.size(0), h = x.size(1);
  if (h == 0) return absl::OkStatus();
  const float* in = x.data<float>();
  const float* w = weight.data<float>();
  float* o = out.data<float>();
#pragma omp parallel for schedule(static) if (WorthThreads(t, h))
  for (int64_t r = 0; r < t; ++r) NormalizeRow(in + r * h, w, eps, h, o + r * h);
  return absl::OkStatus();
}

absl::Status cpu::FusedAddRmsNorm(Tensor& x, Tensor& residual, const Tensor& weight, float eps) {
  LOOM_RETURN_IF_ERROR(internal::CheckFusedAddRmsNorm(x, residual, weight, eps));
  const int64_t t = x.size(0), h = x.size(1);
  if (h == 0) return absl::OkStatus();
  float* xs = x.data<float>();
  float* res = residual.data<float>();
  const float* w = weight.data<float>();
#pragma omp parallel for schedule(static) if (WorthThreads(t, h))
  for (int64_t r = 0; r < t; ++r) {
    float* xr = xs + r * h;
    float* rr = res + r * h;
    for (int64_t i = 0; i < h; ++i) rr[i] += xr[i];
    NormalizeRow(rr, w, eps, h, xr);
  }
  return absl::OkStatus();
}

}  // namespace loom::kernels
