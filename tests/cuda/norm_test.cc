#include <gtest/gtest.h>

#include <random>
#include <utility>
#include <vector>

#include "kernels/cuda/cuda_kernels.h"
#include "kernels/kernels.h"
#include "tests/cuda/cuda_test_util.h"

namespace loom::kernels::cuda {
namespace {

using testing::CudaTest;

const std::vector<std::pair<int64_t, int64_t>> kShapes = {{1, 1},    {3, 7},    {32, 1024},
                                                          {5, 4096}, {2, 5000}, {300, 64}};

class CudaNormTest : public CudaTest {};

TEST_F(CudaNormTest, RmsNormMatchesTheCpu) {
  std::mt19937 rng(10);
  for (const auto& [t, h] : kShapes) {
    SCOPED_TRACE(::testing::Message() << "T=" << t << " H=" << h);
    Tensor x = testing::RandomF32({t, h}, rng, -3.0f, 3.0f);
    Tensor weight = testing::RandomF32({h}, rng, 0.5f, 1.5f);
    Tensor want = Tensor::Empty(DType::kF32, {t, h});
    ASSERT_TRUE(kernels::RmsNorm(kernels::HostContext(), x, weight, 1e-6f, want).ok());
    Tensor dx = ToDevice(x), dweight = ToDevice(weight);
    Tensor dout = Poisoned(DType::kF32, {t, h});
    ASSERT_TRUE(RmsNorm(ctx(), dx, dweight, 1e-6f, dout).ok());
    Tensor got = ToHost(dout);
    testing::ExpectClose(got.data<float>(), testing::AsDoubles(want), 1e-5, 1e-6, "out");
    // In place: out aliases x.
    ASSERT_TRUE(RmsNorm(ctx(), dx, dweight, 1e-6f, dx).ok());
    Tensor in_place = ToHost(dx);
    testing::ExpectClose(in_place.data<float>(), testing::AsDoubles(want), 1e-5, 1e-6, "x");
  }
}

TEST_F(CudaNormTest, FusedAddRmsNormMatchesTheCpu) {
  std::mt19937 rng(11);
  for (const auto& [t, h] : kShapes) {
    SCOPED_TRACE(::testing::Message() << "T=" << t << " H=" << h);
    Tensor x = testing::RandomF32({t, h}, rng, -3.0f, 3.0f);
    Tensor residual = testing::RandomF32({t, h}, rng, -3.0f, 3.0f);
    Tensor weight = testing::RandomF32({h}, rng, 0.5f, 1.5f);
    Tensor dx = ToDevice(x), dresidual = ToDevice(residual), dweight = ToDevice(weight);
    ASSERT_TRUE(FusedAddRmsNorm(ctx(), dx, dresidual, dweight, 1e-5f).ok());
    Tensor want_x = x.Clone(), want_residual = residual.Clone();
    ASSERT_TRUE(
        kernels::FusedAddRmsNorm(kernels::HostContext(), want_x, want_residual, weight, 1e-5f)
            .ok());
    Tensor got_x = ToHost(dx), got_residual = ToHost(dresidual);
    testing::ExpectClose(got_residual.data<float>(), testing::AsDoubles(want_residual), 0, 0,
                         "residual");  // one f32 addition: exact
    testing::ExpectClose(got_x.data<float>(), testing::AsDoubles(want_x), 1e-5, 1e-6, "x");
  }
}

TEST_F(CudaNormTest, RejectsBadArguments) {
  Tensor x = Poisoned(DType::kF32, {2, 8}), out = Poisoned(DType::kF32, {2, 8});
  Tensor short_weight = Poisoned(DType::kF32, {7});
  EXPECT_EQ(RmsNorm(ctx(), x, short_weight, 1e-6f, out).code(), absl::StatusCode::kInvalidArgument);
  Tensor weight = Poisoned(DType::kF32, {8});
  EXPECT_EQ(RmsNorm(ctx(), x, weight, -1.0f, out).code(), absl::StatusCode::kInvalidArgument);
  Tensor residual = Poisoned(DType::kF32, {3, 8});
  EXPECT_EQ(FusedAddRmsNorm(ctx(), x, residual, weight, 1e-6f).code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace loom::kernels::cuda
