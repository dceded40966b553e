#include "kernels/rope.h"

#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "kernels/cuda/cuda_kernels.h"
#include "kernels/kernels.h"
#include "tests/cuda/cuda_test_util.h"

namespace loom::kernels::cuda {
namespace {

using testing::CudaTest;

class CudaRopeTest : public CudaTest {
 protected:
  // Rotates the q and k heads of a fused [T, Hq + 2Hk, D] qkv row on both devices and compares
  // the whole row (the v heads must stay as they were).
  void RunCase(int64_t tokens, int64_t hq, int64_t hk, int64_t d, int64_t max_positions,
               uint32_t seed) {
    SCOPED_TRACE(::testing::Message()
                 << "T=" << tokens << " Hq=" << hq << " Hk=" << hk << " D=" << d);
    std::mt19937 rng(seed);
    absl::StatusOr<Tensor> cos_sin = MakeRopeCosSin(d, 10000.0, RopeScalingConfig{}, max_positions);
    ASSERT_TRUE(cos_sin.ok());
    Tensor qkv = testing::RandomF32({tokens, hq + 2 * hk, d}, rng);
    Tensor positions = Tensor::Empty(DType::kI32, {tokens});
    std::uniform_int_distribution<int32_t> pos(0, static_cast<int32_t>(max_positions - 1));
    for (int64_t i = 0; i < tokens; ++i) positions.data<int32_t>()[i] = pos(rng);

    Tensor want = qkv.Clone();
    Tensor q = *want.Slice(1, 0, hq), k = *want.Slice(1, hq, hk);
    ASSERT_TRUE(kernels::ApplyRope(kernels::HostContext(), q, k, positions, *cos_sin).ok());

    Tensor dqkv = ToDevice(qkv), dpositions = ToDevice(positions), dcos_sin = ToDevice(*cos_sin);
    Tensor dq = *dqkv.Slice(1, 0, hq), dk = *dqkv.Slice(1, hq, hk);
    ASSERT_TRUE(ApplyRope(ctx(), dq, dk, dpositions, dcos_sin).ok());
    Tensor got = ToHost(dqkv);
    testing::ExpectClose(got.data<float>(), testing::AsDoubles(want), 1e-6, 1e-6, "qkv");
  }
};

TEST_F(CudaRopeTest, StridedHeadsOfAFusedRowMatchTheCpu) {
  RunCase(1, 1, 1, 2, 4, 20);
  RunCase(7, 4, 2, 8, 64, 21);
  RunCase(33, 16, 8, 128, 4096, 22);
  RunCase(5, 14, 2, 64, 100, 23);
  RunCase(300, 2, 1, 32, 512, 24);
}

TEST_F(CudaRopeTest, PositionOutsideTheTableIsReportedAndItsTokenLeftAlone) {
  std::mt19937 rng(25);
  const int64_t d = 8;
  absl::StatusOr<Tensor> cos_sin = MakeRopeCosSin(d, 10000.0, RopeScalingConfig{}, 16);
  ASSERT_TRUE(cos_sin.ok());
  Tensor q = testing::RandomF32({3, 2, d}, rng), k = testing::RandomF32({3, 1, d}, rng);
  Tensor positions = Tensor::Empty(DType::kI32, {3});
  positions.data<int32_t>()[0] = 3;
  positions.data<int32_t>()[1] = 16;  // one past the table
  positions.data<int32_t>()[2] = -1;
  Tensor dq = ToDevice(q), dk = ToDevice(k), dpositions = ToDevice(positions);
  Tensor dcos_sin = ToDevice(*cos_sin);
  ASSERT_TRUE(ApplyRope(ctx(), dq, dk, dpositions, dcos_sin).ok());
  const absl::Status synced = ctx().Synchronize();
  EXPECT_EQ(synced.code(), absl::StatusCode::kInvalidArgument) << synced;
  EXPECT_NE(synced.message().find("ApplyRope"), std::string::npos) << synced;
  EXPECT_TRUE(ctx().Synchronize().ok()) << "the error is reported once";
  Tensor got_q = ToHost(dq);
  for (int64_t i = 2 * d; i < 3 * 2 * d; ++i) EXPECT_EQ(got_q.data<float>()[i], q.data<float>()[i]);
}

TEST_F(CudaRopeTest, RejectsBadShapes) {
  Tensor cos_sin = Poisoned(DType::kF32, {16, 8}), positions = Poisoned(DType::kI32, {3});
  Tensor q = Poisoned(DType::kF32, {3, 2, 6}), k = Poisoned(DType::kF32, {3, 1, 8});
  EXPECT_EQ(ApplyRope(ctx(), q, k, positions, cos_sin).code(), absl::StatusCode::kInvalidArgument);
  Tensor odd = Poisoned(DType::kF32, {16, 7});
  EXPECT_EQ(ApplyRope(ctx(), q, k, positions, odd).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace loom::kernels::cuda
