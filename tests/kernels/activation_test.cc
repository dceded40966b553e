#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "kernels/kernels.h"
#include "tests/kernels/kernel_test_util.h"

namespace loom::kernels {
namespace {

TEST(SiluAndMulTest, MatchesReference) {
  std::mt19937 rng(11);
  for (auto [t, inter] : std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {3, 17}, {8, 3072}}) {
    SCOPED_TRACE(::testing::Message() << "T=" << t << " I=" << inter);
    Tensor gate_up = testing::RandomF32({t, 2 * inter}, rng, -8.0f, 8.0f);
    Tensor out = testing::PoisonedF32({t, inter});
    ASSERT_TRUE(SiluAndMul(HostContext(), gate_up, out).ok());
    std::vector<double> want(static_cast<size_t>(t * inter));
    for (int64_t r = 0; r < t; ++r) {
      for (int64_t i = 0; i < inter; ++i) {
        const double g = gate_up.data<float>()[r * 2 * inter + i];
        const double u = gate_up.data<float>()[r * 2 * inter + inter + i];
        want[r * inter + i] = g / (1.0 + std::exp(-g)) * u;
      }
    }
    testing::ExpectClose(out.data<float>(), want, 1e-6, 1e-7, "out");
  }
}

TEST(SiluAndMulTest, ExtremeGatesStayFinite) {
  Tensor gate_up = Tensor::Empty(DType::kF32, {1, 4});
  gate_up.data<float>()[0] = -200.0f;  // exp(200) overflows; silu must still be ~0
  gate_up.data<float>()[1] = 200.0f;
  gate_up.data<float>()[2] = 1.0f;
  gate_up.data<float>()[3] = 1.0f;
  Tensor out = testing::PoisonedF32({1, 2});
  ASSERT_TRUE(SiluAndMul(HostContext(), gate_up, out).ok());
  EXPECT_EQ(out.data<float>()[0], -0.0f);
  EXPECT_FLOAT_EQ(out.data<float>()[1], 200.0f);
}

TEST(SiluAndMulTest, RejectsBadShapes) {
  Tensor odd = Tensor::Empty(DType::kF32, {2, 5});
  Tensor out = Tensor::Empty(DType::kF32, {2, 2});
  EXPECT_EQ(SiluAndMul(HostContext(), odd, out).code(), absl::StatusCode::kInvalidArgument);
  Tensor gate_up = Tensor::Empty(DType::kF32, {2, 4});
  Tensor wrong = Tensor::Empty(DType::kF32, {2, 4});
  EXPECT_EQ(SiluAndMul(HostContext(), gate_up, wrong).code(), absl::StatusCode::kInvalidArgument);
  Tensor bf16 = Tensor::Empty(DType::kBF16, {2, 4});
  EXPECT_EQ(SiluAndMul(HostContext(), bf16, out).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace loom::kernels
