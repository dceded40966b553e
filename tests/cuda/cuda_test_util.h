// The fixture of the CUDA kernel tests: skips cleanly on machines without a GPU, otherwise owns
// a DeviceContext and moves tensors between host and device. Device outputs start poisoned
// (every byte 0xFF, a NaN in f32), so an element a kernel forgets to write shows up.
#ifndef LOOM_TESTS_CUDA_CUDA_TEST_UTIL_H_
#define LOOM_TESTS_CUDA_CUDA_TEST_UTIL_H_

#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "common/tensor.h"
#include "kernels/cuda/device_context.h"
#include "tests/kernels/kernel_test_util.h"

namespace loom::kernels::cuda::testing {

using ::loom::kernels::testing::ExpectClose;
using ::loom::kernels::testing::RandomBf16;
using ::loom::kernels::testing::RandomF32;

// Why there is no usable device, or empty when there is one.
inline std::string NoDeviceReason() {
  int count = 0;
  const cudaError_t error = cudaGetDeviceCount(&count);
  if (error != cudaSuccess) {
    return std::string("cudaGetDeviceCount failed: ") + cudaGetErrorName(error) + " (" +
           cudaGetErrorString(error) + ")";
  }
  if (count == 0) return "cudaGetDeviceCount found 0 devices";
  return "";
}

class CudaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string reason = NoDeviceReason();
    if (!reason.empty()) GTEST_SKIP() << "no CUDA device, skipping a GPU test: " << reason;
    auto context = DeviceContext::Create();
    ASSERT_TRUE(context.ok()) << context.status();
    context_ = std::move(*context);
  }

  void TearDown() override {
    if (context_ != nullptr) EXPECT_TRUE(context_->Synchronize().ok());
  }

  DeviceContext& ctx() { return *context_; }

  // A device copy of a host tensor (made contiguous first).
  Tensor ToDevice(const Tensor& host) {
    const Tensor src = host.is_contiguous() ? host : host.Clone();
    absl::StatusOr<Tensor> device = AllocateDeviceTensor(src.dtype(), src.shape());
    EXPECT_TRUE(device.ok()) << device.status();
    if (!device.ok()) return Tensor();
    const absl::Status copied = CopyToDevice(ctx(), src, *device);
    EXPECT_TRUE(copied.ok()) << copied;
    return *device;
  }

  // A host copy of a contiguous device tensor, after the work queued so far.
  Tensor ToHost(const Tensor& device) {
    Tensor host = Tensor::Empty(device.dtype(), device.shape());
    const absl::Status copied = CopyToHost(ctx(), device, host);
    EXPECT_TRUE(copied.ok()) << copied;
    return host;
  }

  // A device tensor whose bytes are all 0xFF (NaN as f32).
  Tensor Poisoned(DType dtype, std::vector<int64_t> shape) {
    absl::StatusOr<Tensor> device = AllocateDeviceTensor(dtype, std::move(shape));
    EXPECT_TRUE(device.ok()) << device.status();
    if (!device.ok()) return Tensor();
    EXPECT_EQ(cudaMemsetAsync(device->raw_data(), 0xFF, device->nbytes(), ctx().stream()),
              cudaSuccess);
    return *device;
  }

  std::unique_ptr<DeviceContext> context_;
};

// Host helpers for building inputs and references.
inline Tensor RoundTo(const Tensor& f32, DType dtype) {
  absl::StatusOr<Tensor> rounded = f32.To(dtype);
  EXPECT_TRUE(rounded.ok()) << rounded.status();
  return rounded.ok() ? *rounded : Tensor();
}

inline Tensor ToF32(const Tensor& t) { return RoundTo(t, DType::kF32); }

inline std::vector<double> AsDoubles(const Tensor& f32) {
  const Tensor c = f32.is_contiguous() ? f32 : f32.Clone();
  return std::vector<double>(c.data<float>(), c.data<float>() + c.numel());
}

inline std::vector<double> Doubles(const float* p, int64_t n) {
  return std::vector<double>(p, p + n);
}

}  // namespace loom::kernels::cuda::testing

#endif  // LOOM_TESTS_CUDA_CUDA_TEST_UTIL_H_
