// Helpers shared by the kernel tests: seeded random tensors, NaN poisoning (so a test sees any
// element a kernel forgot to write), and a relative-error comparison against a reference.
#ifndef LOOM_TESTS_KERNELS_KERNEL_TEST_UTIL_H_
#define LOOM_TESTS_KERNELS_KERNEL_TEST_UTIL_H_

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "common/tensor.h"

namespace loom::kernels::testing {

inline Tensor RandomF32(std::vector<int64_t> shape, std::mt19937& rng, float lo = -1.0f,
                        float hi = 1.0f) {
  Tensor t = Tensor::Empty(DType::kF32, std::move(shape));
  std::uniform_real_distribution<float> dist(lo, hi);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = dist(rng);
  return t;
}

inline Tensor RandomBf16(std::vector<int64_t> shape, std::mt19937& rng, float lo = -1.0f,
                         float hi = 1.0f) {
  Tensor t = Tensor::Empty(DType::kBF16, std::move(shape));
  std::uniform_real_distribution<float> dist(lo, hi);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<uint16_t>()[i] = F32ToBF16(dist(rng));
  return t;
}

inline void Poison(Tensor& t) {
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = std::numeric_limits<float>::quiet_NaN();
}

inline Tensor PoisonedF32(std::vector<int64_t> shape) {
  Tensor t = Tensor::Empty(DType::kF32, std::move(shape));
  Poison(t);
  return t;
}

// Every element within atol + rtol·|want|; reports the first few misses with their index.
inline void ExpectClose(const float* got, const std::vector<double>& want, double rtol, double atol,
                        const char* what) {
  int reported = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    const double tol = atol + rtol * std::fabs(want[i]);
    if (!(std::fabs(static_cast<double>(got[i]) - want[i]) <= tol)) {
      ADD_FAILURE() << what << "[" << i << "]: got " << got[i] << ", want " << want[i];
      if (++reported >= 5) return;
    }
  }
}

}  // namespace loom::kernels::testing

#endif  // LOOM_TESTS_KERNELS_KERNEL_TEST_UTIL_H_
