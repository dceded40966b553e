// Tensor: a typed, shaped, strided view over memory that either owns its storage or borrows it.
//
// Copies are cheap and share storage (like a shared_ptr). A view keeps its owner alive through
// `owner_` when it was made from an owning tensor or an mmap; `Tensor::Borrow` makes a view that
// keeps nothing alive (the caller guarantees the memory outlives it). Owning storage is 64-byte
// aligned.
//
// A tensor lives on a device (common/device.h): the host, or a GPU. Shape, strides, Slice and
// View are metadata and work on every device; everything that touches the elements on the host
// (data<T>()[i] reads, To, Clone, CopyFrom) is for host tensors only — CopyFrom and To refuse
// others. Device memory comes from an execution context (kernels/execution_context.h), which
// also copies between devices. Not thread-safe for concurrent writes to the same elements, like any buffer.
#ifndef LOOM_COMMON_TENSOR_H_
#define LOOM_COMMON_TENSOR_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/device.h"
#include "common/dtype.h"

namespace loom {

class Tensor {
 public:
  Tensor() = default;

  // Allocates contiguous, zero-filled host storage.
  static Tensor Empty(DType dtype, std::vector<int64_t> shape);
  // A contiguous view of memory owned elsewhere, on `device`; `owner` (may be null) is kept
  // alive by the view.
  static Tensor Borrow(void* data, DType dtype, std::vector<int64_t> shape,
                       std::shared_ptr<const void> owner = nullptr, Device device = Device::Cpu());

  bool defined() const { return data_ != nullptr; }
  const Device& device() const { return device_; }
  DType dtype() const { return dtype_; }
  const std::vector<int64_t>& shape() const { return shape_; }
  const std::vector<int64_t>& strides() const { return strides_; }  // in elements
  int64_t dim() const { return static_cast<int64_t>(shape_.size()); }
  int64_t size(int64_t d) const { return shape_[d < 0 ? d + dim() : d]; }
  int64_t numel() const;
  size_t nbytes() const { return static_cast<size_t>(numel()) * DTypeSize(dtype_); }
  bool is_contiguous() const;

  void* raw_data() const { return data_; }
  template <typename T>
  T* data() const { return static_cast<T*>(data_); }

  // A view of `length` entries along `d`, starting at `start`. Shares storage; may be strided.
  absl::StatusOr<Tensor> Slice(int64_t d, int64_t start, int64_t length) const;
  // A view with another shape over the same contiguous elements.
  absl::StatusOr<Tensor> View(std::vector<int64_t> shape) const;
  // A new contiguous tensor holding these elements converted to `dtype` (floats only for changes).
  absl::StatusOr<Tensor> To(DType dtype) const;
  // A new contiguous copy.
  Tensor Clone() const;
  // Writes `src`'s elements (any layout, any float dtype) into this tensor's elements, in place.
  // Shapes must match exactly.
  absl::Status CopyFrom(const Tensor& src);

  // "[2, 3] BF16"
  std::string DebugString() const;

 private:
  void* data_ = nullptr;
  DType dtype_ = DType::kF32;
  std::vector<int64_t> shape_;
  std::vector<int64_t> strides_;
  std::shared_ptr<const void> owner_;
  Device device_;
};

std::string ShapeString(const std::vector<int64_t>& shape);

}  // namespace loom

#endif  // LOOM_COMMON_TENSOR_H_
