// Scatter's argument checks, which every communicator shares, and the single-rank scatter.
#include "worker/comm/collective_args.h"

#include <gtest/gtest.h>

#include <vector>

#include "absl/strings/match.h"
#include "worker/comm/communicator.h"

namespace loom {
namespace {

void ExpectRefused(const absl::Status& s, const std::string& says) {
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), says)) << s << " (expected \"" << says << "\")";
}

TEST(CollectiveArgsTest, ScatterRootNeedsOneContiguousPartPerRankOfOutsDtype) {
  Tensor out = Tensor::Empty(DType::kF32, {2, 3});
  // Parts may differ in shape: the others' regions are theirs to size.
  std::vector<Tensor> parts = {Tensor::Empty(DType::kF32, {2, 3}),
                               Tensor::Empty(DType::kF32, {0, 3})};
  EXPECT_TRUE(CheckScatterArgs(parts, out, 0, 0, 2).ok());
  ExpectRefused(CheckScatterArgs({parts[0]}, out, 0, 0, 2), "one part per rank (2), got 1");
  ExpectRefused(CheckScatterArgs(parts, Tensor::Empty(DType::kF32, {3, 2}), 0, 0, 2),
                "the root's out must have its part's shape [2, 3]");
  ExpectRefused(CheckScatterArgs(parts, Tensor::Empty(DType::kBF16, {2, 3}), 0, 0, 2),
                "part 0 must be BF16 like out");
  ExpectRefused(CheckScatterArgs(parts, out, -1, 0, 2), "root -1 outside [0, 2)");
  Tensor strided = *Tensor::Empty(DType::kF32, {2, 6}).Slice(1, 0, 3);
  ExpectRefused(CheckScatterArgs({parts[0], strided}, out, 0, 0, 2), "part 1 must be contiguous");
  ExpectRefused(CheckScatterArgs({}, strided, 0, 1, 2), "out must be contiguous");
  ExpectRefused(CheckScatterArgs({}, Tensor(), 0, 1, 2), "out is undefined");
  // A receiver passes no parts; what it is sent is the root's to check.
  EXPECT_TRUE(CheckScatterArgs({}, out, 0, 1, 2).ok());
}

TEST(CollectiveArgsTest, SingleRankScatterCopiesItsPartOrLeavesItInPlace) {
  SingleRankCommunicator comm;
  Tensor part = Tensor::Empty(DType::kI32, {3});
  for (int i = 0; i < 3; ++i) part.data<int32_t>()[i] = 10 + i;
  Tensor out = Tensor::Empty(DType::kI32, {3});
  ASSERT_TRUE(comm.Scatter({part}, out, 0).ok());
  EXPECT_EQ(out.data<int32_t>()[2], 12);
  EXPECT_TRUE(comm.Scatter({part}, part, 0).ok());
  EXPECT_EQ(part.data<int32_t>()[2], 12);
  ExpectRefused(comm.Scatter({part, part}, out, 0), "one part per rank (1), got 2");
  ExpectRefused(comm.Scatter({part}, out, 1), "root 1 outside [0, 1)");
}

}  // namespace
}  // namespace loom
