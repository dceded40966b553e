#include "common/device.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace loom {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

TEST(DeviceSpecTest, ParsesTheThreeSpellingsAndRoundTrips) {
  for (const char* text : {"cpu", "cuda", "cuda:0", "cuda:7"}) {
    absl::StatusOr<DeviceSpec> spec = ParseDeviceSpec(text);
    ASSERT_TRUE(spec.ok()) << text << ": " << spec.status();
    EXPECT_EQ(spec->ToString(), text);
  }
  EXPECT_EQ(ParseDeviceSpec("cuda:3")->index, 3);
  EXPECT_EQ(ParseDeviceSpec("cuda")->kind, DeviceKind::kCuda);
}

TEST(DeviceSpecTest, AnythingElseIsAClearError) {
  for (const char* text :
       {"", "gpu", "CUDA", "cuda:", "cuda:-1", "cuda:x", "cuda:1x", "cuda:+1", "tpu:0", "cpu:0"}) {
    absl::StatusOr<DeviceSpec> spec = ParseDeviceSpec(text);
    ASSERT_FALSE(spec.ok()) << text;
    EXPECT_THAT(spec.status().message(), AllOf(HasSubstr(std::string("\"") + text + "\""),
                                               HasSubstr("cpu, cuda or cuda:K")));
  }
}

TEST(DeviceIndexForRankTest, OneGpuPerRankInRankOrder) {
  const DeviceSpec cuda = *ParseDeviceSpec("cuda");
  for (int r = 0; r < 4; ++r) EXPECT_EQ(*DeviceIndexForRank(cuda, r, 4, 8), r);
  EXPECT_EQ(*DeviceIndexForRank(*ParseDeviceSpec("cuda:2"), 0, 1, 4), 2);
  EXPECT_EQ(*DeviceIndexForRank(*ParseDeviceSpec("cpu"), 1, 2, 0), -1);
}

TEST(DeviceIndexForRankTest, ImpossibleBindingsNameTheDeviceAndTheCount) {
  const DeviceSpec cuda = *ParseDeviceSpec("cuda");
  absl::StatusOr<int> none = DeviceIndexForRank(cuda, 0, 1, 0);
  EXPECT_EQ(none.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(none.status().message(),
              AllOf(HasSubstr("device cuda: "), HasSubstr("no CUDA device")));
  absl::StatusOr<int> too_many = DeviceIndexForRank(cuda, 3, 4, 2);
  EXPECT_THAT(
      too_many.status().message(),
      AllOf(HasSubstr("device cuda"), HasSubstr("4 ranks need 4 GPUs"), HasSubstr("2 are")));
  absl::StatusOr<int> out_of_range = DeviceIndexForRank(*ParseDeviceSpec("cuda:4"), 0, 1, 4);
  EXPECT_THAT(out_of_range.status().message(),
              AllOf(HasSubstr("cuda:4"), HasSubstr("only 4 CUDA devices"), HasSubstr("0..3")));
  absl::StatusOr<int> shared = DeviceIndexForRank(*ParseDeviceSpec("cuda:1"), 1, 2, 4);
  EXPECT_THAT(shared.status().message(), HasSubstr("cannot serve 2 ranks"));
  EXPECT_FALSE(DeviceIndexForRank(cuda, 2, 2, 4).ok());  // rank outside the group
}

}  // namespace
}  // namespace loom
