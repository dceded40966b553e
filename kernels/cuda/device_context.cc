#include "kernels/cuda/device_context.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/launch.h"

namespace loom::kernels::cuda {

absl::StatusOr<DeviceBuffer> DeviceBuffer::Allocate(DeviceContext& context, size_t bytes) {
  DeviceBuffer buffer;
  if (bytes == 0) return buffer;
  if (context.memory_pools()) {
    LOOM_CUDA_CHECK(cudaMallocAsync(&buffer.data_, bytes, context.stream()));
  } else {
    LOOM_CUDA_CHECK(cudaMalloc(&buffer.data_, bytes));
  }
  buffer.context_ = &context;
  buffer.size_ = bytes;
  return buffer;
}

DeviceBuffer::DeviceBuffer(DeviceBuffer&& other) noexcept
    : context_(std::exchange(other.context_, nullptr)),
      data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)) {}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& other) noexcept {
  if (this != &other) {
    Release();
    context_ = std::exchange(other.context_, nullptr);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

DeviceBuffer::~DeviceBuffer() { Release(); }

void DeviceBuffer::Release() {
  if (data_ == nullptr) return;
  // Errors cannot be reported from here; a failing free leaks, which is the lesser harm.
  if (context_->memory_pools()) {
    (void)cudaFreeAsync(data_, context_->stream());
  } else {
    (void)cudaStreamSynchronize(context_->stream());
    (void)cudaFree(data_);
  }
  data_ = nullptr;
  size_ = 0;
  context_ = nullptr;
}

absl::StatusOr<std::unique_ptr<DeviceContext>> DeviceContext::Create(const Options& options) {
  int count = 0;
  const cudaError_t error = cudaGetDeviceCount(&count);
  if (error != cudaSuccess || count == 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("no CUDA device: cudaGetDeviceCount says ",
                     error != cudaSuccess ? cudaGetErrorString(error) : "0 devices"));
  }
  if (options.device < 0 || options.device >= count) {
    return absl::InvalidArgumentError(
        absl::StrCat("CUDA device ", options.device, " does not exist (", count, " devices)"));
  }
  std::unique_ptr<DeviceContext> context(new DeviceContext());
  context->device_ = options.device;
  LOOM_CUDA_CHECK(cudaSetDevice(options.device));
  LOOM_CUDA_CHECK(cudaDeviceGetAttribute(&context->multiprocessors_, cudaDevAttrMultiProcessorCount,
                                         options.device));
  int pools = 0;
  LOOM_CUDA_CHECK(cudaDeviceGetAttribute(&pools, cudaDevAttrMemoryPoolsSupported, options.device));
  context->memory_pools_ = pools != 0;
  if (context->memory_pools_) {
    // Keep freed scratch in the pool instead of returning it to the driver at every sync.
    cudaMemPool_t pool;
    LOOM_CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool, options.device));
    uint64_t threshold = std::numeric_limits<uint64_t>::max();
    LOOM_CUDA_CHECK(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &threshold));
  }
  LOOM_CUDA_CHECK(cudaStreamCreateWithFlags(&context->stream_, cudaStreamNonBlocking));
  LOOM_CUBLAS_CHECK(cublasCreate(&context->cublas_));
  LOOM_CUBLAS_CHECK(cublasSetStream(context->cublas_, context->stream_));
  // f32 GEMMs stay f32 (no TF32), as the CPU reference computes them.
  LOOM_CUBLAS_CHECK(cublasSetMathMode(context->cublas_, CUBLAS_DEFAULT_MATH));
  // A workspace of cuBLAS's own at a fixed address, so GEMMs captured in a device graph never
  // allocate (cuBLAS's guidance for graph capture); 32 MiB covers Hopper's largest kernels.
  LOOM_ASSIGN_OR_RETURN(context->cublas_workspace_,
                        DeviceBuffer::Allocate(*context, size_t{32} << 20));
  LOOM_CUBLAS_CHECK(cublasSetWorkspace(context->cublas_, context->cublas_workspace_.data(),
                                       context->cublas_workspace_.size()));
  LOOM_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&context->device_errors_), sizeof(int32_t)));
  LOOM_CUDA_CHECK(cudaMemsetAsync(context->device_errors_, 0, sizeof(int32_t), context->stream_));
  LOOM_CUDA_CHECK(cudaEventCreateWithFlags(&context->staging_free_, cudaEventDisableTiming));
  return context;
}

DeviceContext::~DeviceContext() {
  if (stream_ != nullptr) (void)cudaStreamSynchronize(stream_);
  scratch_ = DeviceBuffer();
  if (staging_free_ != nullptr) (void)cudaEventDestroy(staging_free_);
  if (staging_ != nullptr) (void)cudaFreeHost(staging_);
  if (device_errors_ != nullptr) (void)cudaFree(device_errors_);
  if (cublas_ != nullptr) (void)cublasDestroy(cublas_);
  cublas_workspace_ = DeviceBuffer();  // after the handle that used it
  if (stream_ != nullptr) {
    (void)cudaStreamSynchronize(stream_);
    (void)cudaStreamDestroy(stream_);
  }
}

absl::Status DeviceContext::Synchronize() {
  int32_t errors = 0;
  LOOM_CUDA_CHECK(
      cudaMemcpyAsync(&errors, device_errors_, sizeof(errors), cudaMemcpyDeviceToHost, stream_));
  LOOM_CUDA_CHECK(cudaStreamSynchronize(stream_));
  if (errors == 0) return absl::OkStatus();
  LOOM_CUDA_CHECK(cudaMemsetAsync(device_errors_, 0, sizeof(int32_t), stream_));
  std::vector<std::string> what;
  if (errors & internal::kErrorRopePosition) {
    what.push_back(
        "ApplyRope: a position was outside the cos/sin table (its token was left "
        "unrotated)");
  }
  if (errors & internal::kErrorKvSlot) {
    what.push_back("WriteKvCache: a slot was past the cache (its token was not written)");
  }
  if (errors & internal::kErrorGatherRow) {
    what.push_back("GatherRows: a row index was outside x (its output row was not written)");
  }
  return absl::InvalidArgumentError(absl::StrJoin(what, "; "));
}

absl::StatusOr<void*> DeviceContext::Scratch(size_t bytes) {
  if (bytes <= scratch_.size()) return scratch_.data();
  constexpr size_t kGranule = size_t{1} << 20;
  size_t want = std::max(bytes, scratch_.size() * 2);
  want = (want + kGranule - 1) / kGranule * kGranule;
  scratch_ = DeviceBuffer();  // released in stream order, after the work that used it
  LOOM_ASSIGN_OR_RETURN(scratch_, DeviceBuffer::Allocate(*this, want));
  ++scratch_generation_;
  return scratch_.data();
}

absl::Status DeviceContext::Upload(const void* host, size_t bytes, void* device) {
  if (bytes == 0) return absl::OkStatus();
  // The previous copy out of the staging buffer must have happened before it is overwritten.
  LOOM_CUDA_CHECK(cudaEventSynchronize(staging_free_));
  if (bytes > staging_size_) {
    const size_t want = std::max({bytes, staging_size_ * 2, size_t{64} << 10});
    if (staging_ != nullptr) LOOM_CUDA_CHECK(cudaFreeHost(staging_));
    staging_ = nullptr;
    staging_size_ = 0;
    LOOM_CUDA_CHECK(cudaMallocHost(&staging_, want));
    staging_size_ = want;
  }
  std::memcpy(staging_, host, bytes);
  LOOM_CUDA_CHECK(cudaMemcpyAsync(device, staging_, bytes, cudaMemcpyHostToDevice, stream_));
  LOOM_CUDA_CHECK(cudaEventRecord(staging_free_, stream_));
  return absl::OkStatus();
}

absl::StatusOr<Tensor> AllocateDeviceTensor(DType dtype, std::vector<int64_t> shape) {
  int64_t numel = 1;
  for (int64_t s : shape) {
    if (s < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("AllocateDeviceTensor: negative dimension in ", ShapeString(shape)));
    }
    numel *= s;
  }
  // Never zero bytes, so that an empty tensor is still defined(), as Tensor::Empty's are.
  const size_t bytes = std::max<size_t>(static_cast<size_t>(numel) * DTypeSize(dtype), 256);
  int index = 0;
  LOOM_CUDA_CHECK(cudaGetDevice(&index));
  void* data = nullptr;
  const cudaError_t error = cudaMalloc(&data, bytes);
  if (error == cudaErrorMemoryAllocation) {
    // Clear the error, or the next launch's cudaGetLastError() would report it again.
    (void)cudaGetLastError();
    return absl::ResourceExhaustedError(absl::StrCat(
        "cannot allocate ", bytes, " bytes for a ", ShapeString(shape), " ", DTypeName(dtype),
        " tensor on ", Device::Cuda(index).ToString(), ": out of device memory"));
  }
  LOOM_CUDA_CHECK(error);
  std::shared_ptr<void> owner(data, [](void* p) { (void)cudaFree(p); });
  return Tensor::Borrow(data, dtype, std::move(shape), std::move(owner), Device::Cuda(index));
}

namespace {

absl::Status CheckCopy(const char* what, const Tensor& host, const Tensor& device) {
  if (!host.defined() || !device.defined() || host.dtype() != device.dtype() ||
      host.shape() != device.shape() || !host.is_contiguous() || !device.is_contiguous()) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": host ", host.DebugString(),
                                                   " and device ", device.DebugString(),
                                                   " must be contiguous and alike"));
  }
  if (!host.device().is_cpu() || device.device().is_cpu()) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": the host tensor is on ",
                                                   host.device().ToString(), ", the device one on ",
                                                   device.device().ToString()));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CopyToDevice(DeviceContext& context, const Tensor& host, const Tensor& device) {
  LOOM_RETURN_IF_ERROR(CheckCopy("CopyToDevice", host, device));
  if (host.nbytes() == 0) return absl::OkStatus();
  LOOM_CUDA_CHECK(cudaMemcpyAsync(device.raw_data(), host.raw_data(), host.nbytes(),
                                  cudaMemcpyHostToDevice, context.stream()));
  return absl::OkStatus();
}

absl::Status CopyToHost(DeviceContext& context, const Tensor& device, const Tensor& host) {
  LOOM_RETURN_IF_ERROR(CheckCopy("CopyToHost", host, device));
  if (host.nbytes() == 0) return absl::OkStatus();
  LOOM_CUDA_CHECK(cudaMemcpyAsync(host.raw_data(), device.raw_data(), host.nbytes(),
                                  cudaMemcpyDeviceToHost, context.stream()));
  LOOM_CUDA_CHECK(cudaStreamSynchronize(context.stream()));
  return absl::OkStatus();
}

}  // namespace loom::kernels::cuda
