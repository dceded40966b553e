#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "kernels/kernels.h"
#include "tests/kernels/kernel_test_util.h"

namespace loom::kernels {
namespace {

void CheckLookup(DType dtype, int64_t vocab_start) {
  SCOPED_TRACE(::testing::Message() << DTypeName(dtype) << " vocab_start=" << vocab_start);
  std::mt19937 rng(13);
  const int64_t vocab = 50, h = 24;
  Tensor table = testing::RandomF32({vocab, h}, rng);
  if (dtype != DType::kF32) table = *table.To(dtype);
  const std::vector<int32_t> id_values = {
      static_cast<int32_t>(vocab_start),         static_cast<int32_t>(vocab_start + vocab - 1),
      static_cast<int32_t>(vocab_start + vocab), static_cast<int32_t>(vocab_start - 1),
      static_cast<int32_t>(vocab_start + 7),     -5,
      static_cast<int32_t>(vocab_start + 7)};
  Tensor ids = Tensor::Empty(DType::kI32, {static_cast<int64_t>(id_values.size())});
  for (size_t i = 0; i < id_values.size(); ++i) ids.data<int32_t>()[i] = id_values[i];
  Tensor out = testing::PoisonedF32({ids.size(0), h});
  ASSERT_TRUE(Embedding(HostContext(), ids, table, vocab_start, out).ok());
  for (size_t i = 0; i < id_values.size(); ++i) {
    const int64_t row = id_values[i] - vocab_start;
    for (int64_t j = 0; j < h; ++j) {
      float want = 0.0f;
      if (row >= 0 && row < vocab) {
        const uint16_t bits = dtype == DType::kF32 ? 0 : table.data<uint16_t>()[row * h + j];
        want = dtype == DType::kBF16  ? BF16ToF32(bits)
               : dtype == DType::kF16 ? F16ToF32(bits)
                                      : table.data<float>()[row * h + j];
      }
      ASSERT_EQ(out.data<float>()[i * h + j], want) << "token " << i << " col " << j;
    }
  }
}

TEST(EmbeddingTest, EveryFloatTableWithShardOffsets) {
  for (DType dtype : {DType::kF32, DType::kBF16, DType::kF16}) {
    for (int64_t start : {0, 50, 1000}) CheckLookup(dtype, start);
  }
}

TEST(EmbeddingTest, RejectsBadArguments) {
  Tensor ids = Tensor::Empty(DType::kI32, {3});
  Tensor table = Tensor::Empty(DType::kF32, {10, 4});
  Tensor out = Tensor::Empty(DType::kF32, {3, 4});
  Tensor ids64 = Tensor::Empty(DType::kI64, {3});
  EXPECT_EQ(Embedding(HostContext(), ids64, table, 0, out).code(),
            absl::StatusCode::kInvalidArgument);
  Tensor wrong_out = Tensor::Empty(DType::kF32, {3, 5});
  EXPECT_EQ(Embedding(HostContext(), ids, table, 0, wrong_out).code(),
            absl::StatusCode::kInvalidArgument);
  Tensor i32_table = Tensor::Empty(DType::kI32, {10, 4});
  EXPECT_EQ(Embedding(HostContext(), ids, i32_table, 0, out).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Embedding(HostContext(), ids, table, -1, out).code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace loom::kernels
