// SwiGLU's activation: out = silu(gate) · up, with gate and up the two halves of one projection.
#include <cmath>
#include <cstdint>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "kernels/checks.h"
#include "kernels/cpu/cpu_kernels.h"

namespace loom::kernels {

absl::Status cpu::SiluAndMul(const Tensor& gate_up, Tensor& out) {
  LOOM_RETURN_IF_ERROR(internal::CheckSiluAndMul(gate_up, out));
  const int64_t t = gate_up.size(0), inter = gate_up.size(1) / 2;
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
