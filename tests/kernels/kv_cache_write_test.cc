#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "kernels/kernels.h"
#include "tests/kernels/kernel_test_util.h"

namespace loom::kernels {
namespace {

TEST(WriteKvCacheTest, ScattersStridedViewsAndSkipsNegativeSlots) {
  std::mt19937 rng(17);
  const int64_t tokens = 5, hq = 4, hk = 2, d = 8, blocks = 4, block_size = 3;
  Tensor qkv = testing::RandomF32({tokens, hq + 2 * hk, d}, rng);
  Tensor k = *qkv.Slice(1, hq, hk);
  Tensor v = *qkv.Slice(1, hq + hk, hk);
  Tensor k_cache = testing::PoisonedF32({blocks, block_size, hk, d});
  Tensor v_cache = testing::PoisonedF32({blocks, block_size, hk, d});
  const std::vector<int64_t> slots = {7, 0, -1, 11, 5};
  Tensor slot_mapping = Tensor::Empty(DType::kI64, {tokens});
  for (int64_t t = 0; t < tokens; ++t) slot_mapping.data<int64_t>()[t] = slots[t];
  ASSERT_TRUE(WriteKvCache(HostContext(), k, v, slot_mapping, k_cache, v_cache).ok());
  std::vector<bool> written(blocks * block_size, false);
  for (int64_t t = 0; t < tokens; ++t) {
    if (slots[t] < 0) continue;
    written[slots[t]] = true;
    for (int64_t h = 0; h < hk; ++h) {
      for (int64_t j = 0; j < d; ++j) {
        const int64_t at = (slots[t] * hk + h) * d + j;
        EXPECT_EQ(k_cache.data<float>()[at],
                  qkv.data<float>()[(t * (hq + 2 * hk) + hq + h) * d + j]);
        EXPECT_EQ(v_cache.data<float>()[at],
                  qkv.data<float>()[(t * (hq + 2 * hk) + hq + hk + h) * d + j]);
      }
    }
  }
  // Slots nobody wrote keep their (NaN) contents.
  for (int64_t s = 0; s < blocks * block_size; ++s) {
    if (!written[s]) EXPECT_TRUE(std::isnan(k_cache.data<float>()[s * hk * d]));
  }
}

TEST(WriteKvCacheTest, RejectsOutOfRangeSlotWithoutWriting) {
  Tensor k = Tensor::Empty(DType::kF32, {2, 1, 4});
  Tensor v = Tensor::Empty(DType::kF32, {2, 1, 4});
  Tensor k_cache = testing::PoisonedF32({2, 2, 1, 4});
  Tensor v_cache = testing::PoisonedF32({2, 2, 1, 4});
  Tensor slots = Tensor::Empty(DType::kI64, {2});
  slots.data<int64_t>()[0] = 1;
  slots.data<int64_t>()[1] = 4;  // 2 blocks × 2 slots: 4 is one past the end
  EXPECT_EQ(WriteKvCache(HostContext(), k, v, slots, k_cache, v_cache).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(std::isnan(k_cache.data<float>()[4]));
}

TEST(WriteKvCacheTest, RejectsShapeMismatches) {
  Tensor k = Tensor::Empty(DType::kF32, {2, 1, 4});
  Tensor v = Tensor::Empty(DType::kF32, {2, 1, 4});
  Tensor cache = Tensor::Empty(DType::kF32, {2, 2, 1, 4});
  Tensor cache2 = Tensor::Empty(DType::kF32, {2, 2, 1, 4});
  Tensor slots = Tensor::Empty(DType::kI64, {2});
  Tensor short_slots = Tensor::Empty(DType::kI64, {1});
  Tensor i32_slots = Tensor::Empty(DType::kI32, {2});
  Tensor wrong_heads = Tensor::Empty(DType::kF32, {2, 2, 2, 4});
  Tensor wrong_v = Tensor::Empty(DType::kF32, {2, 1, 8});
  EXPECT_EQ(WriteKvCache(HostContext(), k, v, short_slots, cache, cache2).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(WriteKvCache(HostContext(), k, v, i32_slots, cache, cache2).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(WriteKvCache(HostContext(), k, v, slots, wrong_heads, wrong_heads).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(WriteKvCache(HostContext(), k, wrong_v, slots, cache, cache2).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(WriteKvCache(HostContext(), k, v, slots, cache, wrong_heads).code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace loom::kernels
