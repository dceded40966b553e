// The load's staging pipeline on a fake GPU whose copies run late: a buffer is refilled only
// after the fence behind its last copy, two copies overlap, and Finish leaves every part loaded.
#include "worker/loader/staged_upload.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "tests/worker/fake_gpu.h"

namespace loom {
namespace {

TEST(StagedUploadTest, BuffersAreReusedOnlyAfterTheirCopyAndEveryPartArrives) {
  testing::FakeGpu gpu;
  const std::vector<int64_t> sizes = {5, 300, 7, 300, 1, 64};  // grows and shrinks
  std::vector<Tensor> parts;
  for (int64_t n : sizes) parts.push_back(*gpu.Allocate(DType::kF32, {n}));
  {
    StagedUpload staging(gpu);
    for (size_t i = 0; i < parts.size(); ++i) {
      ASSERT_TRUE(staging
                      .Write(parts[i],
                             [i](Tensor& host) {
                               for (int64_t j = 0; j < host.numel(); ++j) {
                                 host.data<float>()[j] = static_cast<float>(i * 1000 + j);
                               }
                               return absl::OkStatus();
                             })
                      .ok());
      EXPECT_LE(gpu.max_pending, 2);
    }
    ASSERT_TRUE(staging.Finish().ok());
  }
  EXPECT_EQ(gpu.max_pending, 2);
  for (size_t i = 0; i < parts.size(); ++i) {
    for (int64_t j = 0; j < parts[i].numel(); ++j) {
      ASSERT_EQ(parts[i].data<float>()[j], static_cast<float>(i * 1000 + j)) << i << " " << j;
    }
  }
  // The third write waited for the first copy (fence 1) before filling its buffer again.
  ASSERT_GE(gpu.log.size(), 4u);
  EXPECT_TRUE(absl::StartsWith(gpu.log[0], "copy ")) << gpu.log[0];
  EXPECT_TRUE(absl::StartsWith(gpu.log[1], "copy ")) << gpu.log[1];
  EXPECT_EQ(gpu.log[2], "wait 1");
}

TEST(StagedUploadTest, AFailedFillQueuesNothingAndTheOthersStillLand) {
  testing::FakeGpu gpu;
  Tensor a = *gpu.Allocate(DType::kF32, {4}), b = *gpu.Allocate(DType::kF32, {4});
  StagedUpload staging(gpu);
  auto ones = [](Tensor& host) {
    for (int j = 0; j < 4; ++j) host.data<float>()[j] = 1.0f;
    return absl::OkStatus();
  };
  ASSERT_TRUE(staging.Write(a, ones).ok());
  const absl::Status failed =
      staging.Write(b, [](Tensor&) { return absl::DataLossError("truncated file"); });
  EXPECT_EQ(failed.code(), absl::StatusCode::kDataLoss);
  ASSERT_TRUE(staging.Finish().ok());
  EXPECT_EQ(a.data<float>()[3], 1.0f);
  EXPECT_EQ(b.data<float>()[3], 0.0f);
  Tensor strided = *a.View({2, 2});
  EXPECT_FALSE(staging.Write(*strided.Slice(1, 0, 1), ones).ok());
}

}  // namespace
}  // namespace loom
