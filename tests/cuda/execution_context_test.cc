// The GPU's ExecutionContext, driven through kernels.h and checked against the host context.
// The factory test runs on every machine (a missing GPU must be a clear error); the others need
// a device and skip cleanly without one.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <cstdint>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "kernels/cuda/cuda_execution_context.h"
#include "kernels/kernels.h"
#include "kernels/rope.h"
#include "kernels/sampling.h"
#include "tests/cuda/cuda_test_util.h"

namespace loom::kernels {
namespace {

using ::loom::kernels::cuda::testing::AsDoubles;
using ::loom::kernels::testing::ExpectClose;
using ::loom::kernels::testing::RandomF32;

bool Contains(const absl::Status& status, const std::string& text) {
  return std::string(status.message()).find(text) != std::string::npos;
}

// Needs no device: what the factory says on a machine with none, and on every machine.
TEST(CudaExecutionContextFactoryTest, CountsDevicesAndNamesTheOneThatIsMissing) {
  const int visible = VisibleCudaDevices();
  EXPECT_EQ(visible == 0, !cuda::testing::NoDeviceReason().empty());
  if (visible == 0) {
    const absl::Status status = CreateExecutionContext(Device::Cuda(0)).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
    EXPECT_TRUE(Contains(status, "cuda:0")) << status;
    EXPECT_TRUE(Contains(status, "no CUDA device is visible")) << status;
    EXPECT_TRUE(Contains(status, "CUDA_VISIBLE_DEVICES")) << status;
  }
  const absl::Status past = CreateExecutionContext(Device::Cuda(visible + 2)).status();
  EXPECT_EQ(past.code(), absl::StatusCode::kFailedPrecondition) << past;
  EXPECT_TRUE(Contains(past, Device::Cuda(visible + 2).ToString())) << past;

  absl::StatusOr<std::unique_ptr<ExecutionContext>> host = CreateExecutionContext(Device::Cpu());
  ASSERT_TRUE(host.ok()) << host.status();
  EXPECT_EQ((*host)->device(), Device::Cpu());
  EXPECT_EQ(cuda::DeviceContextOf(**host), nullptr);
}

class CudaExecutionContextTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (VisibleCudaDevices() == 0) {
      GTEST_SKIP() << "no CUDA device, skipping a GPU test: " << cuda::testing::NoDeviceReason();
    }
    absl::StatusOr<std::unique_ptr<ExecutionContext>> context =
        CreateExecutionContext(Device::Cuda(0));
    ASSERT_TRUE(context.ok()) << context.status();
    gpu_ = std::move(*context);
  }

  void TearDown() override {
    if (gpu_ != nullptr) EXPECT_TRUE(gpu_->Synchronize().ok());
  }

  ExecutionContext& gpu() { return *gpu_; }

  Tensor ToDevice(const Tensor& host) {
    absl::StatusOr<Tensor> device = gpu().Allocate(host.dtype(), host.shape());
    EXPECT_TRUE(device.ok()) << device.status();
    if (!device.ok()) return Tensor();
    const absl::Status uploaded = gpu().Upload(host.is_contiguous() ? host : host.Clone(), *device);
    EXPECT_TRUE(uploaded.ok()) << uploaded;
    return *device;
  }

  Tensor ToHost(const Tensor& device) {
    Tensor host = Tensor::Empty(device.dtype(), device.shape());
    const absl::Status downloaded = gpu().Download(device, host);
    EXPECT_TRUE(downloaded.ok()) << downloaded;
    return host;
  }

  Tensor Allocate(DType dtype, std::vector<int64_t> shape) {
    absl::StatusOr<Tensor> t = gpu().Allocate(dtype, std::move(shape));
    EXPECT_TRUE(t.ok()) << t.status();
    return t.ok() ? *t : Tensor();
  }

  static Tensor I32(std::vector<int32_t> values) {
    Tensor t = Tensor::Empty(DType::kI32, {static_cast<int64_t>(values.size())});
    std::copy(values.begin(), values.end(), t.data<int32_t>());
    return t;
  }

  std::unique_ptr<ExecutionContext> gpu_;
};

TEST_F(CudaExecutionContextTest, DescribesItsDeviceAndAllocatesZeroedTensorsThere) {
  EXPECT_EQ(gpu().device(), Device::Cuda(0));
  const std::string description = gpu().Description();
  EXPECT_NE(description.find("(cuda:0, sm_"), std::string::npos) << description;
  EXPECT_NE(description.find(" GiB)"), std::string::npos) << description;
  ASSERT_NE(cuda::DeviceContextOf(gpu()), nullptr);
  EXPECT_EQ(cuda::DeviceContextOf(gpu())->device(), 0);

  Tensor t = Allocate(DType::kF32, {3, 5});
  EXPECT_EQ(t.device(), Device::Cuda(0));
  EXPECT_TRUE(t.is_contiguous());
  EXPECT_EQ(t.Slice(1, 1, 2)->device(), Device::Cuda(0));
  Tensor back = ToHost(t);
  for (int64_t i = 0; i < back.numel(); ++i) EXPECT_EQ(back.data<float>()[i], 0.0f) << i;
  EXPECT_TRUE(Allocate(DType::kBF16, {0, 4}).defined());
  EXPECT_EQ(gpu().Allocate(DType::kF32, {-1}).status().code(), absl::StatusCode::kInvalidArgument);

  // 4 TiB does not fit; the error names the bytes and the device, and leaves nothing behind for
  // the next launch to report.
  const absl::Status huge = gpu().Allocate(DType::kF32, {int64_t{1} << 40}).status();
  EXPECT_EQ(huge.code(), absl::StatusCode::kResourceExhausted) << huge;
  EXPECT_TRUE(Contains(huge, "4398046511104 bytes")) << huge;
  EXPECT_TRUE(Contains(huge, "cuda:0")) << huge;
  std::mt19937 rng(1);
  Tensor weight = ToDevice(RandomF32({5}, rng));
  EXPECT_TRUE(RmsNorm(gpu(), t, weight, 1e-6f, t).ok());
  EXPECT_TRUE(gpu().Synchronize().ok());
}

TEST_F(CudaExecutionContextTest, UploadAndDownloadRoundTripAndRefuseMismatches) {
  Tensor f32 = Tensor::Empty(DType::kF32, {4, 7});
  std::iota(f32.data<float>(), f32.data<float>() + f32.numel(), -3.5f);
  Tensor i32 = I32({7, -1, 1 << 30, 0, 42});
  Tensor back_f32 = ToHost(ToDevice(f32)), back_i32 = ToHost(ToDevice(i32));
  for (int64_t i = 0; i < f32.numel(); ++i)
    EXPECT_EQ(back_f32.data<float>()[i], f32.data<float>()[i]);
  for (int64_t i = 0; i < i32.numel(); ++i) {
    EXPECT_EQ(back_i32.data<int32_t>()[i], i32.data<int32_t>()[i]);
  }

  Tensor device = ToDevice(f32);
  Tensor wrong_shape = Tensor::Empty(DType::kF32, {7, 4});
  EXPECT_EQ(gpu().Download(device, wrong_shape).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(gpu().Upload(device, device).code(), absl::StatusCode::kInvalidArgument);
  Tensor host_dst = Tensor::Empty(DType::kF32, {4, 7});
  EXPECT_EQ(gpu().Upload(f32, host_dst).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(gpu().Download(f32, host_dst).code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(CudaExecutionContextTest, MemoryIsSane) {
  absl::StatusOr<DeviceMemory> memory = gpu().Memory();
  ASSERT_TRUE(memory.ok()) << memory.status();
  EXPECT_GT(memory->total_bytes, int64_t{1} << 30);
  EXPECT_GT(memory->free_bytes, 0);
  EXPECT_LE(memory->free_bytes, memory->total_bytes);
}

TEST_F(CudaExecutionContextTest, LinearAndNormsMatchTheHost) {
  std::mt19937 rng(7);
  Tensor x = RandomF32({5, 16}, rng), w = RandomF32({12, 16}, rng), bias = RandomF32({12}, rng);
  Tensor want = Tensor::Empty(DType::kF32, {5, 12});
  ASSERT_TRUE(Linear(HostContext(), x, w, &bias, want).ok());
  Tensor dx = ToDevice(x), dw = ToDevice(w), dbias = ToDevice(bias);
  Tensor dout = Allocate(DType::kF32, {5, 12});
  ASSERT_TRUE(Linear(gpu(), dx, dw, &dbias, dout).ok());
  ExpectClose(ToHost(dout).data<float>(), AsDoubles(want), 1e-5, 1e-5, "Linear");

  Tensor weight = RandomF32({16}, rng, 0.5f, 1.5f), residual = RandomF32({5, 16}, rng);
  Tensor want_norm = Tensor::Empty(DType::kF32, {5, 16});
  ASSERT_TRUE(RmsNorm(HostContext(), x, weight, 1e-6f, want_norm).ok());
  Tensor dweight = ToDevice(weight), dnorm = Allocate(DType::kF32, {5, 16});
  ASSERT_TRUE(RmsNorm(gpu(), dx, dweight, 1e-6f, dnorm).ok());
  ExpectClose(ToHost(dnorm).data<float>(), AsDoubles(want_norm), 1e-5, 1e-6, "RmsNorm");

  Tensor hx = x.Clone(), hres = residual.Clone(), dres = ToDevice(residual);
  ASSERT_TRUE(FusedAddRmsNorm(HostContext(), hx, hres, weight, 1e-6f).ok());
  ASSERT_TRUE(FusedAddRmsNorm(gpu(), dx, dres, dweight, 1e-6f).ok());
  ExpectClose(ToHost(dx).data<float>(), AsDoubles(hx), 1e-5, 1e-6, "FusedAddRmsNorm x");
  ExpectClose(ToHost(dres).data<float>(), AsDoubles(hres), 0, 0, "FusedAddRmsNorm residual");
}

TEST_F(CudaExecutionContextTest, GatherRowsAndCopyMatchTheHost) {
  std::mt19937 rng(3);
  Tensor base = RandomF32({6, 10}, rng);
  Tensor x = *base.Slice(1, 2, 5);  // rows 10 floats apart
  Tensor rows = I32({5, 0, 3, 5});
  Tensor want = Tensor::Empty(DType::kF32, {4, 5});
  ASSERT_TRUE(GatherRows(HostContext(), x, rows, want).ok());
  Tensor dbase = ToDevice(base), drows = ToDevice(rows);
  Tensor dx = *dbase.Slice(1, 2, 5), dout = Allocate(DType::kF32, {4, 5});
  ASSERT_TRUE(GatherRows(gpu(), dx, drows, dout).ok());
  ExpectClose(ToHost(dout).data<float>(), AsDoubles(want), 0, 0, "GatherRows");

  Tensor dcopy = Allocate(DType::kF32, {6, 5}), dwhole = Allocate(DType::kF32, {6, 10});
  ASSERT_TRUE(Copy(gpu(), dx, dcopy).ok());
  ASSERT_TRUE(Copy(gpu(), dbase, dwhole).ok());
  ExpectClose(ToHost(dcopy).data<float>(), AsDoubles(x.Clone()), 0, 0, "Copy of rows");
  ExpectClose(ToHost(dwhole).data<float>(), AsDoubles(base), 0, 0, "Copy");

  // A row only the device sees is out of range: the call queues, Synchronize reports it once.
  Tensor dbad = ToDevice(I32({1, 6})), dgathered = Allocate(DType::kF32, {2, 5});
  ASSERT_TRUE(GatherRows(gpu(), dx, dbad, dgathered).ok());
  const absl::Status status = gpu().Synchronize();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_TRUE(Contains(status, "GatherRows")) << status;
  EXPECT_TRUE(gpu().Synchronize().ok());
  ExpectClose(ToHost(dgathered).data<float>(), AsDoubles(*x.Slice(0, 1, 1)), 0, 0, "good row");
}

TEST_F(CudaExecutionContextTest, PenaltiesMatchTheHost) {
  std::mt19937 rng(9);
  Tensor logits = RandomF32({3, 40}, rng);
  const std::vector<int32_t> ids0 = {0, 5, 39}, counts0 = {0, 2, 1}, ids2 = {7}, counts2 = {3};
  std::vector<PenaltyRow> rows(3);
  rows[0] = {ids0, counts0, 0.5f, 0.25f, 1.3f};
  rows[2] = {ids2, counts2, -0.5f, 0.0f, 0.8f};
  Tensor device = ToDevice(logits);
  Tensor want = logits.Clone();
  ASSERT_TRUE(ApplyPenalties(HostContext(), want, rows).ok());
  ASSERT_TRUE(ApplyPenalties(gpu(), device, rows).ok());
  ExpectClose(ToHost(device).data<float>(), AsDoubles(want), 0, 0, "ApplyPenalties");
}

TEST_F(CudaExecutionContextTest, HashFillIsTheHostsBitsInEveryDtype) {
  // A column slice of a [3, 10, 7] tensor: rows 4..9 of dimension 1.
  HashFill fill{0x1234abcdull, 0.05, 3, 5, 7, 10, 4};
  for (DType dtype : {DType::kF32, DType::kBF16, DType::kF16}) {
    Tensor want = Tensor::Empty(dtype, {3, 5, 7});
    ASSERT_TRUE(FillHashUniform(HostContext(), fill, want).ok());
    Tensor device = Allocate(dtype, {3, 5, 7});
    ASSERT_TRUE(FillHashUniform(gpu(), fill, device).ok());
    Tensor got = ToHost(device);
    EXPECT_EQ(std::memcmp(got.raw_data(), want.raw_data(), want.nbytes()), 0)
        << DTypeName(dtype) << ": the device's dummy weights differ from the host's";
  }
}

TEST_F(CudaExecutionContextTest, TensorsOnAnotherDeviceAreRefused) {
  std::mt19937 rng(5);
  Tensor x = RandomF32({2, 8}, rng), weight = RandomF32({8}, rng);
  Tensor dx = ToDevice(x), dweight = ToDevice(weight), dout = Allocate(DType::kF32, {2, 8});
  const absl::Status host_on_gpu = RmsNorm(gpu(), x, dweight, 1e-6f, dout);
  EXPECT_EQ(host_on_gpu.code(), absl::StatusCode::kInvalidArgument) << host_on_gpu;
  EXPECT_TRUE(Contains(host_on_gpu, "cpu") && Contains(host_on_gpu, "cuda:0")) << host_on_gpu;
  Tensor out = Tensor::Empty(DType::kF32, {2, 8});
  const absl::Status gpu_on_host = RmsNorm(HostContext(), dx, weight, 1e-6f, out);
  EXPECT_EQ(gpu_on_host.code(), absl::StatusCode::kInvalidArgument) << gpu_on_host;
}

TEST_F(CudaExecutionContextTest, AttentionThroughAPlanMatchesTheHost) {
  std::mt19937 rng(11);
  // One sequence of 6 positions, the last 2 new, in blocks 2 then 0 of a 3-block cache.
  AttentionBatch batch{{0, 2}, {6}, {{2, 0}}};
  Tensor q = RandomF32({2, 2, 8}, rng);
  Tensor k_cache = RandomF32({3, 4, 1, 8}, rng), v_cache = RandomF32({3, 4, 1, 8}, rng);
  Tensor want = Tensor::Empty(DType::kF32, {2, 2, 8});
  ASSERT_TRUE(PagedAttention(HostContext(), q, k_cache, v_cache, batch, 0.35f, 0, want).ok());
  Tensor dq = ToDevice(q), dk = ToDevice(k_cache), dv = ToDevice(v_cache);
  Tensor dout = Allocate(DType::kF32, {2, 2, 8});
  absl::StatusOr<std::unique_ptr<AttentionPlan>> plan = PlanAttention(gpu(), batch, dq, dk);
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_TRUE(PagedAttention(gpu(), dq, dk, dv, **plan, 0.35f, 0, dout).ok());
  ExpectClose(ToHost(dout).data<float>(), AsDoubles(want), 1e-5, 1e-6, "PagedAttention");

  absl::StatusOr<std::unique_ptr<AttentionPlan>> host_plan =
      PlanAttention(HostContext(), batch, q, k_cache);
  ASSERT_TRUE(host_plan.ok());
  const absl::Status status = PagedAttention(gpu(), dq, dk, dv, **host_plan, 0.35f, 0, dout);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
}

// The other kernels only forward; one call each shows the wiring.
TEST_F(CudaExecutionContextTest, TheOtherKernelsMatchTheHost) {
  std::mt19937 rng(13);
  Tensor gate_up = RandomF32({3, 8}, rng), act = Tensor::Empty(DType::kF32, {3, 4});
  ASSERT_TRUE(SiluAndMul(HostContext(), gate_up, act).ok());
  Tensor dact = Allocate(DType::kF32, {3, 4});
  ASSERT_TRUE(SiluAndMul(gpu(), ToDevice(gate_up), dact).ok());
  ExpectClose(ToHost(dact).data<float>(), AsDoubles(act), 1e-5, 1e-6, "SiluAndMul");

  Tensor table = RandomF32({10, 6}, rng), ids = I32({12, 3, 19, 11});
  Tensor rows = Tensor::Empty(DType::kF32, {4, 6}), drows = Allocate(DType::kF32, {4, 6});
  ASSERT_TRUE(Embedding(HostContext(), ids, table, 10, rows).ok());
  ASSERT_TRUE(Embedding(gpu(), ToDevice(ids), ToDevice(table), 10, drows).ok());
  ExpectClose(ToHost(drows).data<float>(), AsDoubles(rows), 0, 0, "Embedding");

  absl::StatusOr<Tensor> cos_sin = MakeRopeCosSin(8, 10000.0, RopeScalingConfig{}, 16);
  ASSERT_TRUE(cos_sin.ok());
  Tensor qk = RandomF32({2, 3, 8}, rng), positions = I32({4, 15});
  Tensor dqk = ToDevice(qk), dpositions = ToDevice(positions), dcos_sin = ToDevice(*cos_sin);
  Tensor q = *qk.Slice(1, 0, 2), k = *qk.Slice(1, 2, 1);
  Tensor dq = *dqk.Slice(1, 0, 2), dk = *dqk.Slice(1, 2, 1);
  ASSERT_TRUE(ApplyRope(HostContext(), q, k, positions, *cos_sin).ok());
  ASSERT_TRUE(ApplyRope(gpu(), dq, dk, dpositions, dcos_sin).ok());
  ExpectClose(ToHost(dqk).data<float>(), AsDoubles(qk), 1e-6, 1e-6, "ApplyRope");

  Tensor slots = Tensor::Empty(DType::kI64, {2});
  slots.data<int64_t>()[0] = 5;
  slots.data<int64_t>()[1] = -1;
  Tensor k_cache = Tensor::Empty(DType::kF32, {2, 4, 1, 8}), v_cache = k_cache.Clone();
  Tensor dk_cache = Allocate(DType::kF32, {2, 4, 1, 8}),
         dv_cache = Allocate(DType::kF32, {2, 4, 1, 8});
  ASSERT_TRUE(WriteKvCache(HostContext(), k, k, slots, k_cache, v_cache).ok());
  ASSERT_TRUE(WriteKvCache(gpu(), dk, dk, ToDevice(slots), dk_cache, dv_cache).ok());
  ExpectClose(ToHost(dk_cache).data<float>(), AsDoubles(k_cache), 0, 0, "k_cache");
  ExpectClose(ToHost(dv_cache).data<float>(), AsDoubles(v_cache), 0, 0, "v_cache");

  Tensor logits = RandomF32({3, 50}, rng);
  const std::vector<SamplingParams> params(3);
  const std::vector<uint64_t> steps(3, 0);
  absl::StatusOr<std::vector<int32_t>> want = Sample(HostContext(), logits, params, steps);
  absl::StatusOr<std::vector<int32_t>> got = Sample(gpu(), ToDevice(logits), params, steps);
  ASSERT_TRUE(want.ok() && got.ok()) << want.status() << got.status();
  EXPECT_EQ(*got, *want);
}

}  // namespace
}  // namespace loom::kernels
