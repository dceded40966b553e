// SwiGLU's activation: out = silu(gate) · up, with gate and up the two halves of one projection.
#include <cmath>
#include <cstdint>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "kernels/cpu/check.h"
#include "kernels/kernels.h"

namespace loom::kernels {

absl::Status SiluAndMul(const Tensor& gate_up, Tensor& out) {
  constexpr const char* kName = "SiluAndMul";
  LOOM_RETURN_IF_ERROR(internal::CheckTensor(kName, "gate_up", gate_up, DType::kF32, 2, true));
  if (gate_up.size(1) % 2 != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "SiluAndMul: gate_up needs an even last dimension, got ", gate_up.DebugString()));
  }
  const int64_t t = gate_up.size(0), inter = gate_up.size(1) / 2;
  LOOM_RETURN_IF_ERROR(internal::CheckTensor(kName, "out", out, DType::kF32, 2, true));
  LOOM_RETURN_IF_ERROR(internal::CheckShape(kName, "out", out, {t, inter}));
  const float* in = gate_up.data<float>();
  float* o = out.data<float>();
#pragma omp parallel for schedule(static) if (t * inter >= (1 << 14))
  for (int64_t r = 0; r < t; ++r) {
    const float* gate = in + r * 2 * inter;
    const float* up = gate + inter;
    float* dst = o + r * inter;
    for (int64_t i = 0; i < inter; ++i) {
      const float g = gate[i];
      dst[i] = g / (1.0f + std::exp(-g)) * up[i];
    }
  }
  return absl::OkStatus();
}

}  // namespace loom::kernels
