// FillHashUniform on the host: a region is exactly its slice of the whole tensor in every dtype
// and cut (the TP-invariance of dummy weights rests on it), the values are the generator's
// (pinned against the formula written out here, so a change of the dummy model is caught), the
// threads' chunks join seamlessly, and bad regions are refused before anything is written.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "common/dtype.h"
#include "kernels/kernels.h"
#include "kernels/threading.h"

namespace loom::kernels {
namespace {

// The generator as DESIGN.md §3.4 states it: one SplitMix64 step at key + i·gamma, its top 53
// bits as u in [0, 1), value (2u − 1)·range.
float Reference(uint64_t key, int64_t i, double range) {
  uint64_t x = key + static_cast<uint64_t>(i) * 0x9e3779b97f4a7c15ull + 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  x ^= x >> 31;
  const double u = static_cast<double>(x >> 11) / 9007199254740992.0;
  return static_cast<float>((2 * u - 1) * range);
}

TEST(HashFillTest, WholeTensorIsTheGeneratorInEveryDtype) {
  SetNumThreads(2);
  const int64_t n = 3 * (1 << 14) + 77;  // several chunks, the last one short
  HashFill fill{42, 0.02, 1, n, 1, n, 0};
  Tensor f32 = Tensor::Empty(DType::kF32, {n}), bf16 = Tensor::Empty(DType::kBF16, {n}),
         f16 = Tensor::Empty(DType::kF16, {n});
  ASSERT_TRUE(FillHashUniform(HostContext(), fill, f32).ok());
  ASSERT_TRUE(FillHashUniform(HostContext(), fill, bf16).ok());
  ASSERT_TRUE(FillHashUniform(HostContext(), fill, f16).ok());
  double lo = 1, hi = -1;
  for (int64_t i = 0; i < n; ++i) {
    const float want = Reference(42, i, 0.02);
    ASSERT_EQ(f32.data<float>()[i], want) << i;
    ASSERT_EQ(bf16.data<uint16_t>()[i], F32ToBF16(want)) << i;
    ASSERT_EQ(f16.data<uint16_t>()[i], F32ToF16(want)) << i;
    lo = std::min<double>(lo, want);
    hi = std::max<double>(hi, want);
  }
  EXPECT_GE(lo, -0.02);
  EXPECT_LE(hi, 0.02);
  EXPECT_LT(lo, -0.019);  // spread over the range
  EXPECT_GT(hi, 0.019);
}

TEST(HashFillTest, ARegionIsItsSliceOfTheWholeTensor) {
  SetNumThreads(2);
  const std::vector<int64_t> full = {6, 40, 300};
  for (DType dtype : {DType::kF32, DType::kBF16, DType::kF16}) {
    Tensor whole = Tensor::Empty(dtype, full);
    ASSERT_TRUE(FillHashUniform(HostContext(), {7, 1.0, 1, 6, 40 * 300, 6, 0}, whole).ok());
    for (int dim = 0; dim < 3; ++dim) {
      const int64_t start = full[dim] / 3, rows = full[dim] / 2;
      int64_t outer = 1, inner = 1;
      for (int d = 0; d < dim; ++d) outer *= full[d];
      for (int d = dim + 1; d < 3; ++d) inner *= full[d];
      std::vector<int64_t> shape = full;
      shape[dim] = rows;
      Tensor part = Tensor::Empty(dtype, shape);
      ASSERT_TRUE(
          FillHashUniform(HostContext(), {7, 1.0, outer, rows, inner, full[dim], start}, part)
              .ok());
      Tensor want = whole.Slice(dim, start, rows)->Clone();
      EXPECT_EQ(std::memcmp(part.raw_data(), want.raw_data(), want.nbytes()), 0)
          << DTypeName(dtype) << " cut along dimension " << dim;
    }
  }
}

TEST(HashFillTest, BadRegionsAreRefusedAndWriteNothing) {
  Tensor out = Tensor::Empty(DType::kF32, {4, 5});
  std::memset(out.raw_data(), 0, out.nbytes());
  for (const HashFill& bad : {HashFill{1, 1.0, 1, 4, 5, 5, 2},    // past the full rows
                              HashFill{1, 1.0, 1, 4, 6, 4, 0},    // not out's size
                              HashFill{1, 1.0, 1, 4, 5, 4, -1},   // negative start
                              HashFill{1, 1.0 / 0.0, 1, 4, 5, 4, 0}}) {
    const absl::Status s = FillHashUniform(HostContext(), bad, out);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  }
  Tensor ints = Tensor::Empty(DType::kI32, {20});
  EXPECT_FALSE(FillHashUniform(HostContext(), {1, 1.0, 1, 20, 1, 20, 0}, ints).ok());
  Tensor strided = *Tensor::Empty(DType::kF32, {4, 10}).Slice(1, 0, 5);
  EXPECT_FALSE(FillHashUniform(HostContext(), {1, 1.0, 1, 4, 5, 4, 0}, strided).ok());
  for (int i = 0; i < 20; ++i) EXPECT_EQ(out.data<float>()[i], 0.0f);
}

}  // namespace
}  // namespace loom::kernels
