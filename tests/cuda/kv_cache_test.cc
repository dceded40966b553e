#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <random>
#include <vector>

#include "kernels/cuda/cuda_kernels.h"
#include "kernels/kernels.h"
#include "tests/cuda/cuda_test_util.h"

namespace loom::kernels::cuda {
namespace {

using testing::CudaTest;

class CudaKvCacheTest : public CudaTest {};

// k and v are head views of a fused qkv row; the caches start from random contents (the slots
// not written must keep them); slots are shuffled and some tokens skip (-1).
TEST_F(CudaKvCacheTest, StridedTokensLandInShuffledSlotsForEveryCacheType) {
  std::mt19937 rng(40);
  const int64_t tokens = 37, hq = 4, hk = 2, d = 64, num_blocks = 9, block_size = 8;
  Tensor qkv = testing::RandomF32({tokens, hq + 2 * hk, d}, rng);
  Tensor k = *qkv.Slice(1, hq, hk), v = *qkv.Slice(1, hq + hk, hk);
  std::vector<int64_t> slots(num_blocks * block_size);
  std::iota(slots.begin(), slots.end(), 0);
  std::shuffle(slots.begin(), slots.end(), rng);
  Tensor slot_mapping = Tensor::Empty(DType::kI64, {tokens});
  for (int64_t t = 0; t < tokens; ++t) slot_mapping.data<int64_t>()[t] = t % 5 == 3 ? -1 : slots[t];
  Tensor initial = testing::RandomF32({num_blocks, block_size, hk, d}, rng);
  for (DType type : {DType::kF32, DType::kBF16, DType::kF16}) {
    SCOPED_TRACE(DTypeName(type));
    // The CPU writes f32 caches; rounding its result to `type` is what the GPU must hold, since
    // both round each f32 value to nearest even once.
    Tensor start = testing::ToF32(testing::RoundTo(initial, type));
    Tensor want_k = start.Clone(), want_v = start.Clone();
    ASSERT_TRUE(
        kernels::WriteKvCache(kernels::HostContext(), k, v, slot_mapping, want_k, want_v).ok());
    Tensor dqkv = ToDevice(qkv), dslots = ToDevice(slot_mapping);
    Tensor dk = *dqkv.Slice(1, hq, hk), dv = *dqkv.Slice(1, hq + hk, hk);
    Tensor k_cache = ToDevice(testing::RoundTo(start, type));
    Tensor v_cache = ToDevice(testing::RoundTo(start, type));
    ASSERT_TRUE(WriteKvCache(ctx(), dk, dv, dslots, k_cache, v_cache).ok());
    Tensor got_k = testing::ToF32(ToHost(k_cache)), got_v = testing::ToF32(ToHost(v_cache));
    Tensor want_k_rounded = testing::ToF32(testing::RoundTo(want_k, type));
    Tensor want_v_rounded = testing::ToF32(testing::RoundTo(want_v, type));
    testing::ExpectClose(got_k.data<float>(), testing::AsDoubles(want_k_rounded), 0, 0, "k_cache");
    testing::ExpectClose(got_v.data<float>(), testing::AsDoubles(want_v_rounded), 0, 0, "v_cache");
  }
}

TEST_F(CudaKvCacheTest, SlotPastTheCacheIsReportedAndSkipped) {
  std::mt19937 rng(41);
  Tensor k = testing::RandomF32({2, 1, 4}, rng), v = testing::RandomF32({2, 1, 4}, rng);
  Tensor slot_mapping = Tensor::Empty(DType::kI64, {2});
  slot_mapping.data<int64_t>()[0] = 1;
  slot_mapping.data<int64_t>()[1] = 8;  // the caches hold 2 blocks of 4 slots
  Tensor zeros = Tensor::Empty(DType::kF32, {2, 4, 1, 4});
  Tensor k_cache = ToDevice(zeros), v_cache = ToDevice(zeros);
  Tensor dk = ToDevice(k), dv = ToDevice(v), dslots = ToDevice(slot_mapping);
  ASSERT_TRUE(WriteKvCache(ctx(), dk, dv, dslots, k_cache, v_cache).ok());
  const absl::Status synced = ctx().Synchronize();
  EXPECT_EQ(synced.code(), absl::StatusCode::kInvalidArgument) << synced;
  EXPECT_NE(synced.message().find("WriteKvCache"), std::string::npos) << synced;
  Tensor got = ToHost(k_cache);
  for (int64_t i = 0; i < 4; ++i) EXPECT_EQ(got.data<float>()[4 + i], k.data<float>()[i]);
}

TEST_F(CudaKvCacheTest, RejectsBadShapes) {
  Tensor k = Poisoned(DType::kF32, {2, 1, 4}), v = Poisoned(DType::kF32, {2, 1, 4});
  Tensor slots = Poisoned(DType::kI64, {2});
  Tensor k_cache = Poisoned(DType::kBF16, {2, 4, 2, 4}),
         v_cache = Poisoned(DType::kBF16, {2, 4, 2, 4});
  EXPECT_EQ(WriteKvCache(ctx(), k, v, slots, k_cache, v_cache).code(),
            absl::StatusCode::kInvalidArgument);
  Tensor k_cache2 = Poisoned(DType::kBF16, {2, 4, 1, 4}),
         v_cache2 = Poisoned(DType::kF16, {2, 4, 1, 4});
  EXPECT_EQ(WriteKvCache(ctx(), k, v, slots, k_cache2, v_cache2).code(),
            absl::StatusCode::kInvalidArgument);
  Tensor slots32 = Poisoned(DType::kI32, {2});
  EXPECT_EQ(WriteKvCache(ctx(), k, v, slots32, k_cache2, k_cache2).code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace loom::kernels::cuda
