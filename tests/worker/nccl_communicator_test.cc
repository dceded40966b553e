// NcclCommunicator and the NCCL helpers. Built only with CUDA and NCCL (LOOM_WITH_NCCL). The id
// and status tests need no GPU; the collective round trip runs on a single rank and skips when
// the machine has no CUDA device.
#ifdef LOOM_WITH_NCCL

#include "worker/comm/nccl_communicator.h"

#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <vector>

#include "absl/strings/match.h"
#include "controller/nccl_id.h"
#include "kernels/cuda/nccl_check.h"

namespace loom {
namespace {

TEST(NcclUniqueIdTest, IsFreshAnd128Bytes) {
  absl::StatusOr<std::string> a = NewNcclUniqueId();
  ASSERT_TRUE(a.ok()) << a.status();
  absl::StatusOr<std::string> b = NewNcclUniqueId();
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(a->size(), 128u);
  EXPECT_EQ(b->size(), 128u);
  EXPECT_NE(*a, *b);
}

absl::Status FailingCudaCall() {
  LOOM_CUDA_RETURN_IF_ERROR(static_cast<cudaError_t>(cudaErrorInvalidValue));
  return absl::OkStatus();
}

absl::Status FailingNcclCall() {
  LOOM_NCCL_RETURN_IF_ERROR(static_cast<ncclResult_t>(ncclInvalidArgument));
  return absl::OkStatus();
}

absl::Status PassingCalls() {
  LOOM_CUDA_RETURN_IF_ERROR(cudaSuccess);
  LOOM_NCCL_RETURN_IF_ERROR(ncclSuccess);
  LOOM_NCCL_RETURN_IF_ERROR(ncclInProgress);
  return absl::OkStatus();
}

TEST(CudaCheckTest, ErrorsBecomeStatusesNamingTheExpression) {
  absl::Status cuda = FailingCudaCall();
  EXPECT_EQ(cuda.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(cuda.message(), "static_cast<cudaError_t>(cudaErrorInvalidValue)"))
      << cuda;
  EXPECT_TRUE(absl::StrContains(cuda.message(), "nccl_communicator_test.cc:")) << cuda;
  EXPECT_TRUE(absl::StrContains(cuda.message(), "cudaErrorInvalidValue")) << cuda;

  absl::Status nccl = FailingNcclCall();
  EXPECT_EQ(nccl.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(nccl.message(), "ncclInvalidArgument")) << nccl;
  EXPECT_TRUE(absl::StrContains(nccl.message(), "nccl_communicator_test.cc:")) << nccl;
  EXPECT_TRUE(absl::StrContains(nccl.message(), ncclGetErrorString(ncclInvalidArgument))) << nccl;

  EXPECT_TRUE(PassingCalls().ok());
}

TEST(NcclCommunicatorTest, RejectsBadOptionsBeforeTouchingTheDevice) {
  NcclOptions options;
  options.unique_id = "short";
  absl::StatusOr<std::unique_ptr<NcclCommunicator>> comm = NcclCommunicator::Create(options);
  EXPECT_EQ(comm.status().code(), absl::StatusCode::kInvalidArgument) << comm.status();
  options.unique_id = std::string(128, '\0');
  options.rank = 1;
  comm = NcclCommunicator::Create(options);
  EXPECT_EQ(comm.status().code(), absl::StatusCode::kInvalidArgument) << comm.status();
}

// Device memory holding `values`, freed with the returned tensor's owner.
Tensor DeviceTensor(const std::vector<float>& values, std::vector<int64_t> shape) {
  void* ptr = nullptr;
  EXPECT_EQ(cudaMalloc(&ptr, values.size() * sizeof(float)), cudaSuccess);
  EXPECT_EQ(cudaMemcpy(ptr, values.data(), values.size() * sizeof(float), cudaMemcpyHostToDevice),
            cudaSuccess);
  std::shared_ptr<const void> owner(ptr, [](const void* p) { cudaFree(const_cast<void*>(p)); });
  return Tensor::Borrow(ptr, DType::kF32, std::move(shape), std::move(owner));
}

std::vector<float> ToHost(const Tensor& t) {
  std::vector<float> host(static_cast<size_t>(t.numel()));
  EXPECT_EQ(cudaMemcpy(host.data(), t.raw_data(), t.nbytes(), cudaMemcpyDeviceToHost), cudaSuccess);
  return host;
}

TEST(NcclCommunicatorTest, SingleRankRoundTripOnDeviceBuffers) {
  int devices = 0;
  const cudaError_t e = cudaGetDeviceCount(&devices);
  if (e != cudaSuccess || devices == 0) {
    GTEST_SKIP() << "no CUDA device: cudaGetDeviceCount gave " << devices << " ("
                 << cudaGetErrorString(e) << ")";
  }
  absl::StatusOr<std::string> id = NewNcclUniqueId();
  ASSERT_TRUE(id.ok()) << id.status();
  NcclOptions options;
  options.unique_id = *id;
  absl::StatusOr<std::unique_ptr<NcclCommunicator>> comm = NcclCommunicator::Create(options);
  ASSERT_TRUE(comm.ok()) << comm.status();
  NcclCommunicator& c = **comm;
  EXPECT_EQ(c.rank(), 0);
  EXPECT_EQ(c.world_size(), 1);

  const std::vector<float> values = {1, -2, 3.5f, 4, 5, 6};
  Tensor t = DeviceTensor(values, {2, 3});
  ASSERT_TRUE(c.AllReduceSum(t).ok());
  EXPECT_EQ(ToHost(t), values);

  Tensor gathered = DeviceTensor(std::vector<float>(6, 0), {1, 2, 3});
  ASSERT_TRUE(c.AllGather(t, gathered).ok());
  EXPECT_EQ(ToHost(gathered), values);

  Tensor last = DeviceTensor(std::vector<float>(6, 0), {2, 3});
  ASSERT_TRUE(c.AllGatherLastDim(t, last).ok());
  EXPECT_EQ(ToHost(last), values);

  ASSERT_TRUE(c.Broadcast(t, 0).ok());
  EXPECT_EQ(ToHost(t), values);
  EXPECT_EQ(c.Broadcast(t, 1).code(), absl::StatusCode::kInvalidArgument);

  Tensor mine = DeviceTensor(std::vector<float>(6, 0), {2, 3});
  ASSERT_TRUE(c.Scatter({t}, mine, 0).ok());
  EXPECT_EQ(ToHost(mine), values);
  EXPECT_EQ(c.Scatter({t, t}, mine, 0).code(), absl::StatusCode::kInvalidArgument);

  Tensor wrong = DeviceTensor(std::vector<float>(6, 0), {3, 2});
  EXPECT_EQ(c.AllGatherLastDim(t, wrong).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(c.Barrier().ok());  // argument errors leave the communicator usable
}

}  // namespace
}  // namespace loom

#endif  // LOOM_WITH_NCCL
