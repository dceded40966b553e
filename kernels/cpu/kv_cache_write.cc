// Scatters this step's keys and values into the paged caches. k and v are usually head views
// into a fused qkv row, so they are read through their strides; the caches are contiguous.
#include <cstdint>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "kernels/checks.h"
#include "kernels/cpu/cpu_kernels.h"

namespace loom::kernels {
namespace {

absl::Status CheckNew(const char* name, const Tensor& t) {
  LOOM_RETURN_IF_ERROR(internal::CheckTensor("WriteKvCache", name, t, DType::kF32, 3, false));
  if (t.size(2) > 1 && t.strides()[2] != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("WriteKvCache: ", name, " needs a contiguous head dimension"));
  }
  return absl::OkStatus();
}

void CopyToken(const Tensor& src, int64_t t, float* dst, int64_t heads, int64_t head_dim) {
  const float* row = src.data<float>() + t * src.strides()[0];
  const int64_t head_stride = src.strides()[1];
  for (int64_t h = 0; h < heads; ++h) {
    std::memcpy(dst + h * head_dim, row + h * head_stride,
                static_cast<size_t>(head_dim) * sizeof(float));
  }
}

}  // namespace

absl::Status cpu::WriteKvCache(const Tensor& k, const Tensor& v, const Tensor& slot_mapping,
                          Tensor& k_cache, Tensor& v_cache) {
  constexpr const char* kName = "WriteKvCache";
  LOOM_RETURN_IF_ERROR(CheckNew("k", k));
  LOOM_RETURN_IF_ERROR(CheckNew("v", v));
  LOOM_RETURN_IF_ERROR(internal::CheckShape(kName, "v", v, k.shape()));
  const int64_t tokens = k.size(0), heads = k.size(1), head_dim = k.size(2);
  LOOM_RETURN_IF_ERROR(
      internal::CheckTensor(kName, "slot_mapping", slot_mapping, DType::kI64, 1, true));
  LOOM_RETURN_IF_ERROR(internal::CheckShape(kName, "slot_mapping", slot_mapping, {tokens}));
  LOOM_RETURN_IF_ERROR(internal::CheckTensor(kName, "k_cache", k_cache, DType::kF32, 4, true));
  LOOM_RETURN_IF_ERROR(internal::CheckTensor(kName, "v_cache", v_cache, DType::kF32, 4, true));
  LOOM_RETURN_IF_ERROR(internal::CheckShape(kName, "v_cache", v_cache, k_cache.shape()));
  if (k_cache.size(2) != heads || k_cache.size(3) != head_dim) {
    return absl::InvalidArgumentError(absl::StrCat("WriteKvCache: caches ", k_cache.DebugString(),
                                                   " do not hold k ", k.DebugString()));
  }
  const int64_t num_slots = k_cache.size(0) * k_cache.size(1);
  const int64_t* slots = slot_mapping.data<int64_t>();
  // All slots are checked before any write, so a bad mapping leaves the caches untouched.
  for (int64_t t = 0; t < tokens; ++t) {
    if (slots[t] >= num_slots) {
      return absl::InvalidArgumentError(absl::StrCat("WriteKvCache: slot ", slots[t], " of token ",
                                                     t, " is past the cache's ", num_slots,
                                                     " slots"));
    }
  }
  const int64_t slot_elems = heads * head_dim;
  for (int64_t t = 0; t < tokens; ++t) {
    if (slots[t] < 0) continue;
    CopyToken(k, t, k_cache.data<float>() + slots[t] * slot_elems, heads, head_dim);
    CopyToken(v, t, v_cache.data<float>() + slots[t] * slot_elems, heads, head_dim);
  }
  return absl::OkStatus();
}

}  // namespace loom::kernels
