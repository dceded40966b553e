// ApplyPenalties on the host: the formula entry by entry, rows without penalties untouched, and
// bad rows refused before anything changes.
#include <gtest/gtest.h>

#include <vector>

#include "kernels/kernels.h"

namespace loom::kernels {
namespace {

TEST(PenaltiesTest, RepetitionThenPresenceAndFrequencyPerToken) {
  Tensor logits = Tensor::Empty(DType::kF32, {2, 5});
  const std::vector<float> init = {2, -2, 1, 0.5f, 3, 1, 1, 1, 1, 1};
  for (int i = 0; i < 10; ++i) logits.data<float>()[i] = init[i];
  const std::vector<int32_t> ids = {0, 1, 3}, counts = {2, 0, 1};
  std::vector<PenaltyRow> rows(2);
  rows[0] = {ids, counts, /*presence=*/0.5f, /*frequency=*/0.25f, /*repetition=*/2.0f};
  ASSERT_TRUE(ApplyPenalties(HostContext(), logits, rows).ok());
  const float* row = logits.data<float>();
  EXPECT_FLOAT_EQ(row[0], 2.0f / 2 - 0.25f * 2 - 0.5f);  // positive: divided; seen twice
  EXPECT_FLOAT_EQ(row[1], -2.0f * 2);                     // negative: multiplied; prompt only
  EXPECT_FLOAT_EQ(row[2], 1.0f);                          // never seen
  EXPECT_FLOAT_EQ(row[3], 0.5f / 2 - 0.25f - 0.5f);
  EXPECT_FLOAT_EQ(row[4], 3.0f);
  for (int i = 5; i < 10; ++i) EXPECT_FLOAT_EQ(logits.data<float>()[i], 1.0f);  // no penalties
}

TEST(PenaltiesTest, BadRowsAreRefusedAndChangeNothing) {
  Tensor logits = Tensor::Empty(DType::kF32, {1, 4});
  const std::vector<int32_t> out_of_range = {4}, one = {1}, two = {1, 2};
  std::vector<PenaltyRow> rows = {{out_of_range, one, 0.5f, 0, 1}};
  EXPECT_EQ(ApplyPenalties(HostContext(), logits, rows).code(), absl::StatusCode::kInvalidArgument);
  rows = {{two, one, 0.5f, 0, 1}};  // lengths differ
  EXPECT_FALSE(ApplyPenalties(HostContext(), logits, rows).ok());
  rows = {{one, one, 0, 0, 0.0f}};  // repetition must be > 0
  EXPECT_FALSE(ApplyPenalties(HostContext(), logits, rows).ok());
  rows = {};  // one row of logits, no row of penalties
  EXPECT_FALSE(ApplyPenalties(HostContext(), logits, rows).ok());
  for (int i = 0; i < 4; ++i) EXPECT_EQ(logits.data<float>()[i], 0.0f);
}

}  // namespace
}  // namespace loom::kernels
