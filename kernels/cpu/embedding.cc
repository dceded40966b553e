// Token embedding lookup over one rank's vocabulary shard; ids owned by other ranks give zero
// rows so that an all-reduce across ranks assembles the full embedding.
#include <cstdint>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "kernels/checks.h"
#include "kernels/cpu/cpu_kernels.h"

namespace loom::kernels {

absl::Status cpu::Embedding(const Tensor& ids, const Tensor& table, int64_t vocab_start,
                            Tensor& out) {
  LOOM_RETURN_IF_ERROR(internal::CheckEmbedding(ids, table, vocab_start, out));
  const int64_t t = ids.size(0), vocab = table.size(0), h = table.size(1);
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
