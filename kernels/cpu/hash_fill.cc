// FillHashUniform on the host: the arguments were checked by kernels.h's entry point. Runs of
// the region that are contiguous in the full tensor (one per outer index) are cut into chunks
// spread over the kernel threads; each element is computed independently (common/hash_uniform.h),
// in a loop the compiler vectorises.
#include <algorithm>

#include "common/dtype.h"
#include "common/hash_uniform.h"
#include "kernels/cpu/cpu_kernels.h"

namespace loom::kernels {
namespace {

constexpr int64_t kChunk = 1 << 14;

template <typename T, typename Convert>
void FillRun(uint64_t key, double range, int64_t global, int64_t n, T* out, Convert convert) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) out[i] = convert(HashUniform(key, global + i, range));
}

}  // namespace

absl::Status cpu::FillHashUniform(const HashFill& f, Tensor& out) {
  const int64_t run = f.rows * f.inner;  // contiguous in out and in the full tensor
  const int64_t per_run = (run + kChunk - 1) / kChunk;
  const int64_t chunks = f.outer * per_run;
  const DType dtype = out.dtype();
  void* base = out.raw_data();
#pragma omp parallel for schedule(static) if (chunks > 1)
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t o = c / per_run, begin = (c % per_run) * kChunk;
    const int64_t n = std::min(kChunk, run - begin);
    const int64_t local = o * run + begin;
    const int64_t global = (o * f.full_rows + f.start) * f.inner + begin;
    if (dtype == DType::kF32) {
      FillRun(f.key, f.range, global, n, static_cast<float*>(base) + local, [](float v) { return v; });
    } else if (dtype == DType::kBF16) {
      FillRun(f.key, f.range, global, n, static_cast<uint16_t*>(base) + local, F32ToBF16);
    } else {
      FillRun(f.key, f.range, global, n, static_cast<uint16_t*>(base) + local, F32ToF16);
    }
  }
  return absl::OkStatus();
}

}  // namespace loom::kernels
