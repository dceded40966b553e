// Where the CUDA kernels run: one device, one stream, one cuBLAS handle, and the scratch memory
// and error word the kernels share. Also device tensors: loom::Tensor views over device memory.
//
// Device tensors. The CUDA kernels take the same loom::Tensor views as the CPU kernels, with
// the data pointer in device memory and device() saying which GPU (from AllocateDeviceTensor,
// or Tensor::Borrow over memory allocated elsewhere, given its Device). Shape, strides, Slice
// and View are metadata and work as usual; anything that reads the elements on the host
// (data<T>()[i], To, Clone, CopyFrom, ...) must not be used on them. CopyToDevice / CopyToHost
// move contents between host and device tensors.
//
// Errors. Every CUDA and cuBLAS call is checked and turned into a Status naming the call. Bad
// indices that only the device sees (a RoPE position outside the table, a KV slot past the
// cache, a GatherRows row outside x) cannot be checked before the launch; the kernel skips that
// row, sets a bit in the context's error word, and the next Synchronize() returns InvalidArgument
// naming the kernel.
//
// Thread safety: none; a context belongs to one thread at a time (one per worker rank).
#ifndef LOOM_KERNELS_CUDA_DEVICE_CONTEXT_H_
#define LOOM_KERNELS_CUDA_DEVICE_CONTEXT_H_

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/tensor.h"

namespace loom::kernels::cuda {

class DeviceContext;

// Device memory released in stream order on its context's stream (cudaFreeAsync where the
// device supports memory pools, else after a stream synchronise), so it may be dropped while
// work that uses it is still queued. Move-only.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  static absl::StatusOr<DeviceBuffer> Allocate(DeviceContext& context, size_t bytes);
  DeviceBuffer(DeviceBuffer&& other) noexcept;
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer();

  void* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  void Release();

  DeviceContext* context_ = nullptr;
  void* data_ = nullptr;
  size_t size_ = 0;
};

class DeviceContext {
 public:
  struct Options {
    int device = 0;
  };

  // Selects the device, creates a non-blocking stream and a cuBLAS handle bound to it.
  // FailedPrecondition when there is no usable device.
  static absl::StatusOr<std::unique_ptr<DeviceContext>> Create(const Options& options);
  static absl::StatusOr<std::unique_ptr<DeviceContext>> Create() { return Create(Options{}); }
  ~DeviceContext();
  DeviceContext(const DeviceContext&) = delete;
  DeviceContext& operator=(const DeviceContext&) = delete;

  int device() const { return device_; }
  cudaStream_t stream() const { return stream_; }
  cublasHandle_t cublas() const { return cublas_; }
  int multiprocessors() const { return multiprocessors_; }
  bool memory_pools() const { return memory_pools_; }

  // Waits for the work queued on the stream, then reports (and clears) the bad device-side
  // indices kernels met since the last call.
  absl::Status Synchronize();

  // At least `bytes` of device scratch for the work the caller queues next. Stream order makes
  // reuse safe: the next call may hand out the same memory, and work queued after that call
  // runs after the work queued before it. All work must therefore go to stream().
  absl::StatusOr<void*> Scratch(size_t bytes);
  // Counts the scratch's reallocations: graphs captured before a change read freed memory.
  uint64_t scratch_generation() const { return scratch_generation_; }

  // Queues a copy of `bytes` from host memory to device memory on the stream, through a pinned
  // staging buffer; `host` may be reused as soon as this returns.
  absl::Status Upload(const void* host, size_t bytes, void* device);

  // The device-side error word (bits from kernels/cuda/launch.h).
  int32_t* device_errors() const { return device_errors_; }

 private:
  DeviceContext() = default;

  int device_ = 0;
  int multiprocessors_ = 0;
  bool memory_pools_ = false;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  int32_t* device_errors_ = nullptr;
  DeviceBuffer scratch_;
  uint64_t scratch_generation_ = 0;
  DeviceBuffer cublas_workspace_;
  void* staging_ = nullptr;  // pinned host memory
  size_t staging_size_ = 0;
  cudaEvent_t staging_free_ = nullptr;  // recorded after the last copy out of staging_
};

// A contiguous device tensor on the calling thread's current device (its device() says which);
// the memory is released with cudaFree (which waits for the device) when the last view of it
// goes. Not zero-filled. ResourceExhausted naming the bytes and the device when it does not fit.
absl::StatusOr<Tensor> AllocateDeviceTensor(DType dtype, std::vector<int64_t> shape);

// Copies a contiguous host tensor into a contiguous device tensor of the same dtype and shape
// (queued on the stream; `host` may be reused when this returns).
absl::Status CopyToDevice(DeviceContext& context, const Tensor& host, const Tensor& device);

// Copies a contiguous device tensor into a contiguous host tensor of the same dtype and shape,
// after the work queued before it; returns when the host tensor holds the data.
absl::Status CopyToHost(DeviceContext& context, const Tensor& device, const Tensor& host);

}  // namespace loom::kernels::cuda

#endif  // LOOM_KERNELS_CUDA_DEVICE_CONTEXT_H_
