// Token embedding lookup over one rank's vocabulary shard; ids owned by other ranks give zero
// rows so that an all-reduce across ranks assembles the full embedding.
#include <cstdint>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "kernels/cpu/check.h"
#include "kernels/kernels.h"

namespace loom::kernels {

absl::Status Embedding(const Tensor& ids, const Tensor& table, int64_t vocab_start, Tensor& out) {
  constexpr const char* kName = "Embedding";
  LOOM_RETURN_IF_ERROR(internal::CheckTensor(kName, "ids", ids, DType::kI32, 1, true));
  if (!table.defined() || !IsFloat(table.dtype())) {
    return absl::InvalidArgumentError(
        absl::StrCat("Embedding: table must be F32, BF16 or F16, got ", table.DebugString()));
  }
  LOOM_RETURN_IF_ERROR(internal::CheckTensor(kName, "table", table, table.dtype(), 2, true));
  const int64_t t = ids.size(0), vocab = table.size(0), h = table.size(1);
  LOOM_RETURN_IF_ERROR(internal::CheckTensor(kName, "out", out, DType::kF32, 2, true));
  LOOM_RETURN_IF_ERROR(internal::CheckShape(kName, "out", out, {t, h}));
  if (vocab_start < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("Embedding: vocab_start must be >= 0, got ", vocab_start));
  }
  const int32_t* id = ids.data<int32_t>();
  float* o = out.data<float>();
#pragma omp parallel for schedule(static) if (t * h >= (1 << 16))
  for (int64_t i = 0; i < t; ++i) {
    float* dst = o + i * h;
    const int64_t row = static_cast<int64_t>(id[i]) - vocab_start;
    if (row < 0 || row >= vocab) {
      std::memset(dst, 0, static_cast<size_t>(h) * sizeof(float));
    } else {
      const char* src = static_cast<const char*>(table.raw_data()) +
                        row * h * static_cast<int64_t>(DTypeSize(table.dtype()));
      ConvertToF32(table.dtype(), src, dst, static_cast<size_t>(h));
    }
  }
  return absl::OkStatus();
}

}  // namespace loom::kernels
