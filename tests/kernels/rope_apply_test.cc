#include <gtest/gtest.h>

#include <array>
#include <random>
#include <vector>

#include "kernels/kernels.h"
#include "kernels/rope.h"
#include "tests/kernels/kernel_test_util.h"

namespace loom::kernels {
namespace {

using testing::RandomF32;

// Rotates every head of a [T, H, D] view element by element, in double, from a snapshot.
std::vector<double> Reference(const Tensor& t, const std::vector<float>& snapshot,
                              const int32_t* pos, const Tensor& table) {
  const int64_t n = t.size(0), heads = t.size(1), d = t.size(2), half = d / 2;
  std::vector<double> out(static_cast<size_t>(n * heads * d));
  for (int64_t i = 0; i < n; ++i) {
    const float* cs = table.data<float>() + pos[i] * d;
    for (int64_t h = 0; h < heads; ++h) {
      const float* x = snapshot.data() + (i * heads + h) * d;
      double* o = out.data() + (i * heads + h) * d;
      for (int64_t j = 0; j < half; ++j) {
        o[j] = static_cast<double>(x[j]) * cs[j] - static_cast<double>(x[j + half]) * cs[half + j];
        o[j + half] =
            static_cast<double>(x[j + half]) * cs[j] + static_cast<double>(x[j]) * cs[half + j];
      }
    }
  }
  return out;
}

std::vector<float> Gather(const Tensor& t) {
  Tensor c = t.Clone();
  return std::vector<float>(c.data<float>(), c.data<float>() + c.numel());
}

TEST(ApplyRopeTest, StridedHeadsOfFusedQkvMatchReference) {
  std::mt19937 rng(7);
  for (auto [tokens, hq, hk, d] : std::vector<std::array<int64_t, 4>>{
           {1, 1, 1, 2}, {3, 4, 2, 8}, {5, 16, 8, 128}, {9, 14, 2, 64}}) {
    SCOPED_TRACE(::testing::Message()
                 << "T=" << tokens << " Hq=" << hq << " Hk=" << hk << " D=" << d);
    auto table = MakeRopeCosSin(d, 10000.0, RopeScalingConfig{}, 4096);
    ASSERT_TRUE(table.ok());
    // A fused qkv row [T, (Hq + 2 Hk) · D]; q and k are views into it.
    Tensor qkv = RandomF32({tokens, (hq + 2 * hk) * d}, rng);
    Tensor qkv3 = *qkv.View({tokens, hq + 2 * hk, d});
    Tensor q = *qkv3.Slice(1, 0, hq);
    Tensor k = *qkv3.Slice(1, hq, hk);
    Tensor v_before = qkv3.Slice(1, hq + hk, hk)->Clone();
    ASSERT_FALSE(q.is_contiguous());
    Tensor positions = Tensor::Empty(DType::kI32, {tokens});
    std::uniform_int_distribution<int32_t> pos_dist(0, 4095);
    for (int64_t i = 0; i < tokens; ++i) positions.data<int32_t>()[i] = pos_dist(rng);
    const std::vector<float> q0 = Gather(q), k0 = Gather(k);
    ASSERT_TRUE(ApplyRope(HostContext(), q, k, positions, *table).ok());
    testing::ExpectClose(q.Clone().data<float>(),
                         Reference(q, q0, positions.data<int32_t>(), *table), 1e-6, 1e-6, "q");
    testing::ExpectClose(k.Clone().data<float>(),
                         Reference(k, k0, positions.data<int32_t>(), *table), 1e-6, 1e-6, "k");
    // v, between and after the rotated heads, is untouched.
    Tensor v_after = qkv3.Slice(1, hq + hk, hk)->Clone();
    for (int64_t i = 0; i < v_after.numel(); ++i) {
      ASSERT_EQ(v_after.data<float>()[i], v_before.data<float>()[i]);
    }
  }
}

TEST(ApplyRopeTest, PositionZeroIsIdentity) {
  std::mt19937 rng(8);
  auto table = MakeRopeCosSin(16, 10000.0, RopeScalingConfig{}, 8);
  Tensor q = RandomF32({1, 2, 16}, rng);
  Tensor k = RandomF32({1, 1, 16}, rng);
  Tensor q0 = q.Clone();
  Tensor positions = Tensor::Empty(DType::kI32, {1});
  ASSERT_TRUE(ApplyRope(HostContext(), q, k, positions, *table).ok());
  for (int i = 0; i < 32; ++i) EXPECT_EQ(q.data<float>()[i], q0.data<float>()[i]);
}

TEST(ApplyRopeTest, RejectsOutOfRangePositionWithoutTouchingData) {
  std::mt19937 rng(9);
  auto table = MakeRopeCosSin(8, 10000.0, RopeScalingConfig{}, 16);
  Tensor q = RandomF32({2, 2, 8}, rng);
  Tensor k = RandomF32({2, 1, 8}, rng);
  Tensor q0 = q.Clone();
  Tensor positions = Tensor::Empty(DType::kI32, {2});
  positions.data<int32_t>()[0] = 3;
  positions.data<int32_t>()[1] = 16;
  EXPECT_EQ(ApplyRope(HostContext(), q, k, positions, *table).code(),
            absl::StatusCode::kInvalidArgument);
  positions.data<int32_t>()[1] = -1;
  EXPECT_EQ(ApplyRope(HostContext(), q, k, positions, *table).code(),
            absl::StatusCode::kInvalidArgument);
  for (int i = 0; i < 32; ++i) EXPECT_EQ(q.data<float>()[i], q0.data<float>()[i]);
}

TEST(ApplyRopeTest, RejectsShapeMismatches) {
  auto table = MakeRopeCosSin(8, 10000.0, RopeScalingConfig{}, 16);
  Tensor positions = Tensor::Empty(DType::kI32, {2});
  Tensor q = Tensor::Empty(DType::kF32, {2, 2, 8});
  Tensor k = Tensor::Empty(DType::kF32, {2, 1, 8});
  Tensor q_wrong_d = Tensor::Empty(DType::kF32, {2, 2, 6});
  Tensor k_wrong_t = Tensor::Empty(DType::kF32, {3, 1, 8});
  Tensor pos_i64 = Tensor::Empty(DType::kI64, {2});
  EXPECT_EQ(ApplyRope(HostContext(), q_wrong_d, k, positions, *table).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ApplyRope(HostContext(), q, k_wrong_t, positions, *table).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ApplyRope(HostContext(), q, k, pos_i64, *table).code(),
            absl::StatusCode::kInvalidArgument);
  Tensor odd_table = Tensor::Empty(DType::kF32, {4, 7});
  EXPECT_EQ(ApplyRope(HostContext(), q, k, positions, odd_table).code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace loom::kernels
