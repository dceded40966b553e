#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "kernels/kernels.h"
#include "kernels/threading.h"
#include "tests/kernels/kernel_test_util.h"

namespace loom::kernels {
namespace {

using testing::ExpectClose;
using testing::PoisonedF32;
using testing::RandomBf16;
using testing::RandomF32;

// out[m, n] in double from the exact f32 values of x and the (widened) weights.
std::vector<double> Reference(const Tensor& x, const Tensor& w, const Tensor* bias) {
  const int64_t m_rows = x.size(0), k_dim = x.size(1), n_rows = w.size(0);
  std::vector<double> out(static_cast<size_t>(m_rows * n_rows));
  for (int64_t m = 0; m < m_rows; ++m) {
    for (int64_t n = 0; n < n_rows; ++n) {
      double s = bias ? bias->data<float>()[n] : 0.0;
      for (int64_t k = 0; k < k_dim; ++k) {
        // The reference widens each weight on its own (dtype.h), not through the kernels' SIMD.
        float wv = 0;
        ConvertToF32(
            w.dtype(),
            static_cast<const char*>(w.raw_data()) + (n * k_dim + k) * DTypeSize(w.dtype()), &wv,
            1);
        s += wv * x.data<float>()[m * k_dim + k];
      }
      out[m * n_rows + n] = s;
    }
  }
  return out;
}

// Sum of |terms|, the scale a correctly rounded f32 dot product is accurate to.
double AbsScale(int64_t k_dim) { return static_cast<double>(k_dim); }

void RunCase(DType wtype, int64_t m_rows, int64_t n_rows, int64_t k_dim, bool with_bias,
             uint32_t seed) {
  SCOPED_TRACE(::testing::Message() << DTypeName(wtype) << " M=" << m_rows << " N=" << n_rows
                                    << " K=" << k_dim << " bias=" << with_bias);
  std::mt19937 rng(seed);
  Tensor x = RandomF32({m_rows, k_dim}, rng);
  Tensor w = RandomF32({n_rows, k_dim}, rng);
  if (wtype != DType::kF32) w = *w.To(wtype);
  Tensor bias = RandomF32({n_rows}, rng);
  Tensor out = PoisonedF32({m_rows, n_rows});
  ASSERT_TRUE(Linear(HostContext(), x, w, with_bias ? &bias : nullptr, out).ok());
  // Inputs are in [-1, 1]: f32 accumulation error is bounded by ~K·eps relative to K.
  ExpectClose(out.data<float>(), Reference(x, w, with_bias ? &bias : nullptr), 1e-5,
              2e-7 * AbsScale(k_dim), "out");
}

TEST(LinearTest, Bf16MatchesReferenceAcrossRowCounts) {
  // Covers the streaming path (small M, every remainder mod 4) and the blocked sgemm path.
  uint32_t seed = 1;
  for (int64_t m : {1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 33, 70}) {
    RunCase(DType::kBF16, m, 37, 67, /*with_bias=*/m % 2 == 0, seed++);
  }
}

TEST(LinearTest, Bf16OddShapesAndLargerN) {
  RunCase(DType::kBF16, 1, 1, 1, false, 11);
  RunCase(DType::kBF16, 3, 1, 9, true, 12);
  RunCase(DType::kBF16, 2, 300, 128, false, 13);  // enough work to use threads
  RunCase(DType::kBF16, 40, 600, 136, true, 14);  // several sgemm blocks, last one partial
  RunCase(DType::kBF16, 6, 513, 1024, true, 15);
}

TEST(LinearTest, F16MatchesReferenceOnBothPaths) {
  uint32_t seed = 40;
  // Streaming (decode) row counts, the blocked sgemm path above them, odd shapes.
  for (int64_t m : {1, 2, 3, 4, 5, 16, 17, 40}) RunCase(DType::kF16, m, 37, 67, m % 2 == 0, seed++);
  RunCase(DType::kF16, 1, 1, 1, false, seed++);
  RunCase(DType::kF16, 6, 513, 1024, true, seed++);
  RunCase(DType::kF16, 40, 600, 136, true, seed++);
}

TEST(LinearTest, F32MatchesReference) {
  for (int64_t m : {1, 5, 33}) RunCase(DType::kF32, m, 29, 50, m != 5, 20 + m);
}

TEST(LinearTest, SameResultsWhetherOpenMpOrOpenBlasOwnsTheThreads) {
  // With a single-threaded OpenBLAS, Linear splits the columns over OpenMP threads itself.
  const int saved = NumBlasThreads();
  for (int blas_threads : {1, 2}) {
    SetNumThreads(NumThreads(), blas_threads);
    RunCase(DType::kF32, 33, 300, 128, true, 30);
    RunCase(DType::kF32, 2, 1000, 1100, false, 31);
    RunCase(DType::kBF16, 40, 600, 136, true, 32);
    RunCase(DType::kBF16, 70, 333, 200, false, 33);
  }
  SetNumThreads(NumThreads(), saved);
}

TEST(LinearTest, ZeroInnerDimensionGivesBias) {
  Tensor x = Tensor::Empty(DType::kF32, {2, 0});
  Tensor w = Tensor::Empty(DType::kBF16, {3, 0});
  Tensor bias = Tensor::Empty(DType::kF32, {3});
  bias.data<float>()[1] = 2.0f;
  Tensor out = PoisonedF32({2, 3});
  ASSERT_TRUE(Linear(HostContext(), x, w, &bias, out).ok());
  for (int i = 0; i < 6; ++i) EXPECT_EQ(out.data<float>()[i], i % 3 == 1 ? 2.0f : 0.0f);
}

TEST(LinearTest, RejectsBadArguments) {
  Tensor x = Tensor::Empty(DType::kF32, {2, 4});
  Tensor w = Tensor::Empty(DType::kF32, {3, 4});
  Tensor out = Tensor::Empty(DType::kF32, {2, 3});
  Tensor wrong_k = Tensor::Empty(DType::kF32, {3, 5});
  EXPECT_EQ(Linear(HostContext(), x, wrong_k, nullptr, out).code(),
            absl::StatusCode::kInvalidArgument);
  Tensor wrong_out = Tensor::Empty(DType::kF32, {2, 4});
  EXPECT_EQ(Linear(HostContext(), x, w, nullptr, wrong_out).code(),
            absl::StatusCode::kInvalidArgument);
  Tensor i32_w = Tensor::Empty(DType::kI32, {3, 4});
  EXPECT_EQ(Linear(HostContext(), x, i32_w, nullptr, out).code(),
            absl::StatusCode::kInvalidArgument);
  Tensor bf16_x = Tensor::Empty(DType::kBF16, {2, 4});
  EXPECT_EQ(Linear(HostContext(), bf16_x, w, nullptr, out).code(),
            absl::StatusCode::kInvalidArgument);
  Tensor bias = Tensor::Empty(DType::kF32, {4});
  EXPECT_EQ(Linear(HostContext(), x, w, &bias, out).code(), absl::StatusCode::kInvalidArgument);
  Tensor wide = Tensor::Empty(DType::kF32, {2, 8});
  Tensor strided_x = *wide.Slice(1, 0, 4);
  EXPECT_EQ(Linear(HostContext(), strided_x, w, nullptr, out).code(),
            absl::StatusCode::kInvalidArgument);
  Tensor undefined;
  EXPECT_EQ(Linear(HostContext(), x, undefined, nullptr, out).code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace loom::kernels
