// The weight group's staging on a fake GPU: host tensors reach the inner (device) communicator
// as device tensors holding their bytes, and the results come back into the host tensors.
#include "worker/comm/host_staged_communicator.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "tests/worker/fake_gpu.h"

namespace loom {
namespace {

// Rank 1 of 2, as a device communicator sees it: refuses host tensors; a broadcast from root 0
// writes 7s, an all-reduce doubles, an all-gather puts its input in slot 1 and 5s in slot 0, a
// scatter from root 0 writes 9s (as root 1 it keeps its part: out is that part).
class DeviceOnly : public Communicator {
 public:
  int64_t rank() const override { return 1; }
  int64_t world_size() const override { return 2; }
  absl::Status AllReduceSum(Tensor& t) override {
    if (!OnGpu(t)) return absl::InvalidArgumentError("host tensor");
    for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] *= 2;
    return absl::OkStatus();
  }
  absl::Status AllGatherLastDim(const Tensor&, Tensor&) override {
    return absl::UnimplementedError("unused");
  }
  absl::Status AllGather(const Tensor& in, Tensor& out) override {
    if (!OnGpu(in) || !OnGpu(out)) return absl::InvalidArgumentError("host tensor");
    for (int64_t i = 0; i < in.numel(); ++i) out.data<float>()[i] = 5;
    std::memcpy(out.data<float>() + in.numel(), in.raw_data(), in.nbytes());
    return absl::OkStatus();
  }
  absl::Status Broadcast(Tensor& t, int64_t root) override {
    if (!OnGpu(t) || root != 0) return absl::InvalidArgumentError("host tensor or root");
    for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = 7;
    return absl::OkStatus();
  }
  absl::Status Scatter(absl::Span<const Tensor> parts, Tensor& out, int64_t root) override {
    if (!OnGpu(out)) return absl::InvalidArgumentError("host tensor");
    if (root == 1) {
      const bool own =
          parts.size() == 2 && OnGpu(parts[0]) && parts[1].raw_data() == out.raw_data();
      return own ? absl::OkStatus() : absl::InvalidArgumentError("parts");
    }
    for (int64_t i = 0; i < out.numel(); ++i) out.data<float>()[i] = 9;
    return absl::OkStatus();
  }
  absl::Status Barrier() override { return absl::OkStatus(); }

 private:
  static bool OnGpu(const Tensor& t) { return t.device() == Device::Cuda(0); }
};

TEST(HostStagedCommunicatorTest, HostTensorsTravelThroughTheDeviceAndBack) {
  testing::FakeGpu gpu;
  HostStagedCommunicator comm(std::make_unique<DeviceOnly>(), &gpu);
  Tensor t = Tensor::Empty(DType::kF32, {3});
  for (int i = 0; i < 3; ++i) t.data<float>()[i] = static_cast<float>(i + 1);
  ASSERT_TRUE(comm.AllReduceSum(t).ok());
  EXPECT_EQ(t.data<float>()[2], 6.0f);
  ASSERT_TRUE(comm.Broadcast(t, 0).ok());
  EXPECT_EQ(t.data<float>()[0], 7.0f);
  Tensor out = Tensor::Empty(DType::kF32, {2, 3});
  ASSERT_TRUE(comm.AllGather(t, out).ok());
  EXPECT_EQ(out.data<float>()[0], 5.0f);
  EXPECT_EQ(out.data<float>()[5], 7.0f);
  EXPECT_EQ(comm.rank(), 1);
  EXPECT_EQ(comm.world_size(), 2);
  // A strided host view is refused rather than sent wrong.
  Tensor wide = Tensor::Empty(DType::kF32, {2, 4});
  Tensor cols = *wide.Slice(1, 0, 2);
  EXPECT_EQ(comm.AllReduceSum(cols).code(), absl::StatusCode::kInvalidArgument);
}

TEST(HostStagedCommunicatorTest, ScatterStagesTheRootsPartsAndTheReceiversOut) {
  testing::FakeGpu gpu;
  HostStagedCommunicator comm(std::make_unique<DeviceOnly>(), &gpu);
  Tensor received = Tensor::Empty(DType::kF32, {2});
  ASSERT_TRUE(comm.Scatter({}, received, 0).ok());
  EXPECT_EQ(received.data<float>()[1], 9.0f);
  std::vector<Tensor> parts = {Tensor::Empty(DType::kF32, {3}), Tensor::Empty(DType::kF32, {2})};
  parts[1].data<float>()[0] = 4;
  parts[1].data<float>()[1] = 5;
  Tensor mine = Tensor::Empty(DType::kF32, {2});
  ASSERT_TRUE(comm.Scatter(parts, mine, 1).ok());
  EXPECT_EQ(mine.data<float>()[1], 5.0f);
  ASSERT_TRUE(comm.Scatter(parts, parts[1], 1).ok());  // in place: nothing comes back
  EXPECT_EQ(parts[1].data<float>()[1], 5.0f);
  // Refused on the host, before anything is uploaded.
  EXPECT_EQ(comm.Scatter({parts[1]}, mine, 1).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace loom
