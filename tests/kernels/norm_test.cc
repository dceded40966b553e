#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "kernels/kernels.h"
#include "tests/kernels/kernel_test_util.h"

namespace loom::kernels {
namespace {

using testing::ExpectClose;
using testing::PoisonedF32;
using testing::RandomF32;

std::vector<double> ReferenceNorm(const float* x, const float* w, int64_t t, int64_t h,
                                  double eps) {
  std::vector<double> out(static_cast<size_t>(t * h));
  for (int64_t r = 0; r < t; ++r) {
    double ss = 0;
    for (int64_t i = 0; i < h; ++i) ss += static_cast<double>(x[r * h + i]) * x[r * h + i];
    const double inv = 1.0 / std::sqrt(ss / h + eps);
    for (int64_t i = 0; i < h; ++i) out[r * h + i] = x[r * h + i] * inv * w[i];
  }
  return out;
}

TEST(RmsNormTest, MatchesReference) {
  std::mt19937 rng(3);
  for (auto [t, h] :
       std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {3, 7}, {5, 64}, {17, 1024}, {64, 1030}}) {
    SCOPED_TRACE(::testing::Message() << "T=" << t << " H=" << h);
    Tensor x = RandomF32({t, h}, rng, -3.0f, 3.0f);
    Tensor w = RandomF32({h}, rng, 0.5f, 1.5f);
    Tensor out = PoisonedF32({t, h});
    ASSERT_TRUE(RmsNorm(HostContext(), x, w, 1e-6f, out).ok());
    ExpectClose(out.data<float>(), ReferenceNorm(x.data<float>(), w.data<float>(), t, h, 1e-6),
                3e-6, 1e-6, "out");
  }
}

TEST(RmsNormTest, InPlaceAliasing) {
  std::mt19937 rng(4);
  Tensor x = RandomF32({4, 33}, rng);
  Tensor w = RandomF32({33}, rng);
  const std::vector<double> want = ReferenceNorm(x.data<float>(), w.data<float>(), 4, 33, 1e-5);
  ASSERT_TRUE(RmsNorm(HostContext(), x, w, 1e-5f, x).ok());
  ExpectClose(x.data<float>(), want, 3e-6, 1e-6, "x");
}

TEST(RmsNormTest, ZeroRowGivesZeros) {
  Tensor x = Tensor::Empty(DType::kF32, {1, 8});
  Tensor w = Tensor::Empty(DType::kF32, {8});
  for (int i = 0; i < 8; ++i) w.data<float>()[i] = 1.0f;
  Tensor out = PoisonedF32({1, 8});
  ASSERT_TRUE(RmsNorm(HostContext(), x, w, 1e-6f, out).ok());
  for (int i = 0; i < 8; ++i) EXPECT_EQ(out.data<float>()[i], 0.0f);
}

TEST(FusedAddRmsNormTest, MatchesReference) {
  std::mt19937 rng(5);
  for (auto [t, h] : std::vector<std::pair<int64_t, int64_t>>{{1, 5}, {9, 128}, {40, 1024}}) {
    SCOPED_TRACE(::testing::Message() << "T=" << t << " H=" << h);
    Tensor x = RandomF32({t, h}, rng, -2.0f, 2.0f);
    Tensor residual = RandomF32({t, h}, rng, -2.0f, 2.0f);
    Tensor w = RandomF32({h}, rng, 0.5f, 1.5f);
    std::vector<float> sum(static_cast<size_t>(t * h));
    std::vector<double> want_residual(sum.size());
    for (size_t i = 0; i < sum.size(); ++i) {
      sum[i] = residual.data<float>()[i] + x.data<float>()[i];  // the f32 sum, as the kernel
      want_residual[i] = sum[i];
    }
    ASSERT_TRUE(FusedAddRmsNorm(HostContext(), x, residual, w, 1e-6f).ok());
    ExpectClose(residual.data<float>(), want_residual, 0, 0, "residual");
    ExpectClose(x.data<float>(), ReferenceNorm(sum.data(), w.data<float>(), t, h, 1e-6), 3e-6, 1e-6,
                "x");
  }
}

TEST(NormTest, RejectsBadArguments) {
  Tensor x = Tensor::Empty(DType::kF32, {2, 4});
  Tensor w = Tensor::Empty(DType::kF32, {4});
  Tensor short_w = Tensor::Empty(DType::kF32, {3});
  Tensor out = Tensor::Empty(DType::kF32, {2, 4});
  Tensor bad_out = Tensor::Empty(DType::kF32, {4, 2});
  Tensor bf16_w = Tensor::Empty(DType::kBF16, {4});
  EXPECT_EQ(RmsNorm(HostContext(), x, short_w, 1e-6f, out).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RmsNorm(HostContext(), x, w, 1e-6f, bad_out).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RmsNorm(HostContext(), x, bf16_w, 1e-6f, out).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RmsNorm(HostContext(), x, w, -1.0f, out).code(), absl::StatusCode::kInvalidArgument);
  Tensor residual = Tensor::Empty(DType::kF32, {3, 4});
  EXPECT_EQ(FusedAddRmsNorm(HostContext(), x, residual, w, 1e-6f).code(),
            absl::StatusCode::kInvalidArgument);
  Tensor wide = Tensor::Empty(DType::kF32, {2, 8});
  Tensor strided = *wide.Slice(1, 0, 4);
  EXPECT_EQ(RmsNorm(HostContext(), strided, w, 1e-6f, out).code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace loom::kernels
