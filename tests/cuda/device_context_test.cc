#include "kernels/cuda/device_context.h"

#include <gtest/gtest.h>

#include <numeric>
#include <vector>

#include "kernels/cuda/cuda_check.h"
#include "tests/cuda/cuda_test_util.h"

namespace loom::kernels::cuda {
namespace {

using testing::CudaTest;

// Needs no device: the conversions only read the libraries' tables.
TEST(CudaCheckTest, ErrorsBecomeStatusesNamingTheCall) {
  auto run = [](cudaError_t error) -> absl::Status {
    LOOM_CUDA_CHECK(error);
    return absl::OkStatus();
  };
  EXPECT_TRUE(run(cudaSuccess).ok());
  const absl::Status oom = run(cudaErrorMemoryAllocation);
  EXPECT_EQ(oom.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(oom.message().find("error"), std::string::npos) << oom;
  EXPECT_NE(oom.message().find("cudaErrorMemoryAllocation"), std::string::npos) << oom;
  EXPECT_EQ(run(cudaErrorNoDevice).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(run(cudaErrorLaunchFailure).code(), absl::StatusCode::kInternal);

  auto blas = [](cublasStatus_t status) -> absl::Status {
    LOOM_CUBLAS_CHECK(status);
    return absl::OkStatus();
  };
  EXPECT_TRUE(blas(CUBLAS_STATUS_SUCCESS).ok());
  const absl::Status invalid = blas(CUBLAS_STATUS_INVALID_VALUE);
  EXPECT_EQ(invalid.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(invalid.message().find("CUBLAS_STATUS_INVALID_VALUE"), std::string::npos) << invalid;
  EXPECT_NE(invalid.message().find("device_context_test.cc"), std::string::npos) << invalid;
}

// Runs on every machine: a context where there is a device, the reason where there is none.
TEST(DeviceContextTest, CreateSucceedsWithADeviceAndSaysWhyWithout) {
  absl::StatusOr<std::unique_ptr<DeviceContext>> context = DeviceContext::Create();
  if (testing::NoDeviceReason().empty()) {
    EXPECT_TRUE(context.ok()) << context.status();
  } else {
    EXPECT_EQ(context.status().code(), absl::StatusCode::kFailedPrecondition) << context.status();
  }
}

class CudaDeviceContextTest : public CudaTest {};

TEST_F(CudaDeviceContextTest, TensorsRoundTrip) {
  Tensor host = Tensor::Empty(DType::kF32, {3, 5});
  std::iota(host.data<float>(), host.data<float>() + 15, 1.0f);
  Tensor device = ToDevice(host);
  EXPECT_EQ(device.shape(), host.shape());
  Tensor back = ToHost(device);
  for (int i = 0; i < 15; ++i) EXPECT_EQ(back.data<float>()[i], host.data<float>()[i]);
  absl::StatusOr<Tensor> empty = AllocateDeviceTensor(DType::kBF16, {0, 4});
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->defined());
  EXPECT_EQ(AllocateDeviceTensor(DType::kF32, {-1}).status().code(),
            absl::StatusCode::kInvalidArgument);
  Tensor wrong = Tensor::Empty(DType::kF32, {5, 3});
  EXPECT_EQ(CopyToHost(ctx(), device, wrong).code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(CudaDeviceContextTest, ScratchGrowsAndUploadsArriveInOrder) {
  absl::StatusOr<void*> small = ctx().Scratch(100);
  ASSERT_TRUE(small.ok());
  absl::StatusOr<void*> large = ctx().Scratch(size_t{8} << 20);
  ASSERT_TRUE(large.ok());
  ASSERT_NE(*large, nullptr);
  // Two uploads through the one staging buffer, then both read back.
  std::vector<int32_t> a(1000), b(300000);
  std::iota(a.begin(), a.end(), 0);
  std::iota(b.begin(), b.end(), 7);
  auto* base = static_cast<int32_t*>(*large);
  ASSERT_TRUE(ctx().Upload(a.data(), a.size() * 4, base).ok());
  ASSERT_TRUE(ctx().Upload(b.data(), b.size() * 4, base + a.size()).ok());
  std::vector<int32_t> back(a.size() + b.size());
  ASSERT_EQ(
      cudaMemcpyAsync(back.data(), base, back.size() * 4, cudaMemcpyDeviceToHost, ctx().stream()),
      cudaSuccess);
  ASSERT_TRUE(ctx().Synchronize().ok());
  EXPECT_TRUE(std::equal(a.begin(), a.end(), back.begin()));
  EXPECT_TRUE(std::equal(b.begin(), b.end(), back.begin() + a.size()));
}

}  // namespace
}  // namespace loom::kernels::cuda
