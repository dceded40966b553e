#include "common/tensor.h"

#include <cstdlib>
#include <sys/mman.h>

#include <cstring>
#include <new>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status.h"

namespace loom {
namespace {

constexpr size_t kLazyZeroBytes = size_t{1} << 20;

std::vector<int64_t> ContiguousStrides(const std::vector<int64_t>& shape) {
  std::vector<int64_t> strides(shape.size());
  int64_t s = 1;
  for (int64_t i = static_cast<int64_t>(shape.size()) - 1; i >= 0; --i) {
    strides[i] = s;
    s *= shape[i];
  }
  return strides;
}

// Calls fn(dst_offset_elements, src_offset_elements, run_length) over `shape` in row-major
// order, merging the innermost dimension into runs when the source is unit-stride there.
template <typename Fn>
void ForEachRun(const std::vector<int64_t>& shape, const std::vector<int64_t>& src_strides,
                Fn fn) {
  const int64_t nd = static_cast<int64_t>(shape.size());
  if (nd == 0) {
    fn(0, 0, 1);
    return;
  }
  for (int64_t s : shape) if (s == 0) return;
  const int64_t inner = shape[nd - 1];
  const bool unit = src_strides[nd - 1] == 1;
  std::vector<int64_t> idx(nd, 0);
  int64_t dst = 0;
  while (true) {
    int64_t src = 0;
    for (int64_t i = 0; i < nd - 1; ++i) src += idx[i] * src_strides[i];
    if (unit) {
      fn(dst, src, inner);
    } else {
      for (int64_t j = 0; j < inner; ++j) fn(dst + j, src + j * src_strides[nd - 1], 1);
    }
    dst += inner;
    int64_t i = nd - 2;
    for (; i >= 0; --i) {
      if (++idx[i] < shape[i]) break;
      idx[i] = 0;
    }
    if (i < 0) return;
  }
}

}  // namespace

Tensor Tensor::Empty(DType dtype, std::vector<int64_t> shape) {
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  t.strides_ = ContiguousStrides(t.shape_);
  size_t bytes = t.nbytes();
  size_t padded = (bytes + 63) / 64 * 64;
  if (padded == 0) padded = 64;
  if (padded >= kLazyZeroBytes) {
    // Large buffers (weights, KV cache) come zeroed from the kernel page by page, so memory is
    // only touched when used.
    void* p = mmap(nullptr, padded, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    t.owner_ = std::shared_ptr<void>(p, [padded](void* q) { munmap(q, padded); });
    t.data_ = p;
    return t;
  }
  void* p = std::aligned_alloc(64, padded);
  if (p == nullptr) throw std::bad_alloc();
  std::memset(p, 0, padded);
  t.owner_ = std::shared_ptr<void>(p, [](void* q) { std::free(q); });
  t.data_ = p;
  return t;
}

Tensor Tensor::Borrow(void* data, DType dtype, std::vector<int64_t> shape,
                      std::shared_ptr<const void> owner, Device device) {
  Tensor t;
  t.device_ = device;
  t.data_ = data;
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  t.strides_ = ContiguousStrides(t.shape_);
  t.owner_ = std::move(owner);
  return t;
}

int64_t Tensor::numel() const {
  int64_t n = 1;
  for (int64_t s : shape_) n *= s;
  return n;
}

bool Tensor::is_contiguous() const { return strides_ == ContiguousStrides(shape_); }

absl::StatusOr<Tensor> Tensor::Slice(int64_t d, int64_t start, int64_t length) const {
  if (d < 0) d += dim();
  if (d < 0 || d >= dim()) {
    return absl::InvalidArgumentError(absl::StrCat("slice dim ", d, " out of range for ",
                                                   DebugString()));
  }
  if (start < 0 || length < 0 || start + length > shape_[d]) {
    return absl::InvalidArgumentError(absl::StrCat("slice [", start, ", ", start + length,
                                                   ") out of range along dim ", d, " of ",
                                                   DebugString()));
  }
  Tensor t = *this;
  t.shape_[d] = length;
  t.data_ = static_cast<char*>(data_) + start * strides_[d] * DTypeSize(dtype_);
  return t;
}

absl::StatusOr<Tensor> Tensor::View(std::vector<int64_t> shape) const {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  if (n != numel()) {
    return absl::InvalidArgumentError(absl::StrCat("cannot view ", DebugString(), " as ",
                                                   ShapeString(shape)));
  }
  if (!is_contiguous()) {
    return absl::InvalidArgumentError(absl::StrCat("cannot view non-contiguous ", DebugString()));
  }
  Tensor t = *this;
  t.shape_ = std::move(shape);
  t.strides_ = ContiguousStrides(t.shape_);
  return t;
}

absl::StatusOr<Tensor> Tensor::To(DType dtype) const {
  if (!device_.is_cpu()) {
    return absl::InvalidArgumentError(absl::StrCat("To: ", DebugString(), " is not on the host"));
  }
  Tensor out = Empty(dtype, shape_);
  LOOM_RETURN_IF_ERROR(out.CopyFrom(*this));
  return out;
}

Tensor Tensor::Clone() const {
  Tensor out = Empty(dtype_, shape_);
  (void)out.CopyFrom(*this);  // same dtype and shape: cannot fail
  return out;
}

absl::Status Tensor::CopyFrom(const Tensor& src) {
  if (src.shape_ != shape_) {
    return absl::InvalidArgumentError(absl::StrCat("shape mismatch: expected ",
                                                   ShapeString(shape_), ", got ",
                                                   ShapeString(src.shape_)));
  }
  if (!is_contiguous()) {
    return absl::InvalidArgumentError("CopyFrom needs a contiguous destination");
  }
  if (!device_.is_cpu() || !src.device_.is_cpu()) {
    return absl::InvalidArgumentError(absl::StrCat("CopyFrom copies host tensors only, got ",
                                                   src.DebugString(), " into ", DebugString()));
  }
  const bool same = src.dtype_ == dtype_;
  if (!same && !(IsFloat(src.dtype_) && IsFloat(dtype_))) {
    return absl::InvalidArgumentError(absl::StrCat("cannot convert ", DTypeName(src.dtype_),
                                                   " to ", DTypeName(dtype_)));
  }
  const size_t src_es = DTypeSize(src.dtype_), dst_es = DTypeSize(dtype_);
  char* dst_base = static_cast<char*>(data_);
  const char* src_base = static_cast<const char*>(src.data_);
  std::vector<float> tmp;
  ForEachRun(shape_, src.strides_, [&](int64_t d, int64_t s, int64_t n) {
    const char* from = src_base + s * src_es;
    char* to = dst_base + d * dst_es;
    if (same) {
      std::memcpy(to, from, n * dst_es);
    } else if (dtype_ == DType::kF32) {
      ConvertToF32(src.dtype_, from, reinterpret_cast<float*>(to), n);
    } else {
      tmp.resize(n);
      ConvertToF32(src.dtype_, from, tmp.data(), n);
      ConvertFromF32(tmp.data(), dtype_, to, n);
    }
  });
  return absl::OkStatus();
}

std::string ShapeString(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

std::string Tensor::DebugString() const {
  if (device_.is_cpu()) return absl::StrCat(ShapeString(shape_), " ", DTypeName(dtype_));
  return absl::StrCat(ShapeString(shape_), " ", DTypeName(dtype_), " on ", device_.ToString());
}

}  // namespace loom
