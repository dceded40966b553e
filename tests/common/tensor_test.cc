#include "common/tensor.h"

#include <gtest/gtest.h>

namespace loom {
namespace {

TEST(TensorTest, EmptyIsZeroFilledAndContiguous) {
  Tensor t = Tensor::Empty(DType::kF32, {2, 3});
  EXPECT_EQ(t.numel(), 6);
  EXPECT_EQ(t.nbytes(), 24u);
  EXPECT_TRUE(t.is_contiguous());
  for (int i = 0; i < 6; ++i) EXPECT_EQ(t.data<float>()[i], 0.0f);
}

TEST(TensorTest, SliceAlongInnerDimIsStridedViewSharingStorage) {
  Tensor t = Tensor::Empty(DType::kF32, {2, 4});
  for (int i = 0; i < 8; ++i) t.data<float>()[i] = static_cast<float>(i);
  auto s = t.Slice(1, 1, 2);
  ASSERT_TRUE(s.ok());
  EXPECT_FALSE(s->is_contiguous());
  EXPECT_EQ(s->shape(), (std::vector<int64_t>{2, 2}));
  Tensor c = s->Clone();
  EXPECT_EQ(c.data<float>()[0], 1.0f);
  EXPECT_EQ(c.data<float>()[1], 2.0f);
  EXPECT_EQ(c.data<float>()[2], 5.0f);
  EXPECT_EQ(c.data<float>()[3], 6.0f);
  s->data<float>()[0] = 42.0f;  // a view writes through to the owner
  EXPECT_EQ(t.data<float>()[1], 42.0f);
}

TEST(TensorTest, SliceOutOfRangeIsAnError) {
  Tensor t = Tensor::Empty(DType::kF32, {2, 4});
  EXPECT_FALSE(t.Slice(1, 3, 2).ok());
  EXPECT_FALSE(t.Slice(2, 0, 1).ok());
}

TEST(TensorTest, ViewOutlivesOwnerHandle) {
  Tensor view;
  {
    Tensor t = Tensor::Empty(DType::kI64, {4});
    t.data<int64_t>()[3] = 7;
    view = *t.Slice(0, 2, 2);
  }
  EXPECT_EQ(view.data<int64_t>()[1], 7);
}

TEST(TensorTest, ConvertsBetweenFloatTypesRoundingToNearestEven) {
  Tensor t = Tensor::Empty(DType::kF32, {4});
  float vals[4] = {1.0f, -2.5f, 1.00390625f /* halfway in bf16 */, 65504.0f};
  std::copy(vals, vals + 4, t.data<float>());
  auto bf = t.To(DType::kBF16);
  ASSERT_TRUE(bf.ok());
  auto back = bf->To(DType::kF32);
  EXPECT_EQ(back->data<float>()[0], 1.0f);
  EXPECT_EQ(back->data<float>()[1], -2.5f);
  EXPECT_EQ(back->data<float>()[2], 1.0f);  // ties go to even
  auto h = t.To(DType::kF16);
  auto hb = h->To(DType::kF32);
  EXPECT_EQ(hb->data<float>()[3], 65504.0f);
  EXPECT_EQ(hb->data<float>()[1], -2.5f);
}

TEST(TensorTest, F16RoundTripsEveryFiniteValue) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    if (((h >> 10) & 0x1f) == 0x1f) continue;  // inf/nan
    float f = F16ToF32(static_cast<uint16_t>(h));
    EXPECT_EQ(F32ToF16(f), h) << h;
  }
}

TEST(TensorTest, CopyFromRejectsShapeMismatchAndIntToFloat) {
  Tensor a = Tensor::Empty(DType::kF32, {2});
  EXPECT_FALSE(a.CopyFrom(Tensor::Empty(DType::kF32, {3})).ok());
  EXPECT_FALSE(a.CopyFrom(Tensor::Empty(DType::kI32, {2})).ok());
}

}  // namespace
}  // namespace loom
