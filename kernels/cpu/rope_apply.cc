// Applies rotary embeddings in the HF rotate_half (NeoX) layout: for i < D/2,
//   out[i]       = x[i] · cos[i] - x[i + D/2] · sin[i]
//   out[i + D/2] = x[i + D/2] · cos[i] + x[i] · sin[i]
// q and k are usually head views into a fused qkv row, so rows and heads are addressed through
// the tensors' strides; only the head dimension has to be contiguous.
#include <cstdint>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "kernels/checks.h"
#include "kernels/cpu/cpu_kernels.h"

namespace loom::kernels {
namespace {

absl::Status CheckHeads(const char* name, const Tensor& t, int64_t tokens, int64_t head_dim) {
  LOOM_RETURN_IF_ERROR(internal::CheckTensor("ApplyRope", name, t, DType::kF32, 3, false));
  if (t.size(0) != tokens || t.size(2) != head_dim) {
    return absl::InvalidArgumentError(absl::StrCat("ApplyRope: ", name, " ", t.DebugString(),
                                                   " must be [", tokens, ", heads, ", head_dim,
                                                   "]"));
  }
  if (t.strides()[2] != 1 && head_dim > 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("ApplyRope: ", name, " needs a contiguous head dimension"));
  }
  return absl::OkStatus();
}

void RotateAll(Tensor& t, const int32_t* positions, const float* table, int64_t head_dim) {
  const int64_t tokens = t.size(0), heads = t.size(1), half = head_dim / 2;
  const int64_t s0 = t.strides()[0], s1 = t.strides()[1];
  float* base = t.data<float>();
#pragma omp parallel for schedule(static) if (tokens * heads * head_dim >= (1 << 15))
  for (int64_t i = 0; i < tokens; ++i) {
    const float* cos = table + static_cast<int64_t>(positions[i]) * head_dim;
    const float* sin = cos + half;
    for (int64_t h = 0; h < heads; ++h) {
      float* x = base + i * s0 + h * s1;
      float* y = x + half;
      // Vectorises: the two halves never overlap.
      for (int64_t j = 0; j < half; ++j) {
        const float a = x[j], b = y[j];
        x[j] = a * cos[j] - b * sin[j];
        y[j] = b * cos[j] + a * sin[j];
      }
    }
  }
}

}  // namespace

absl::Status cpu::ApplyRope(Tensor& q, Tensor& k, const Tensor& positions, const Tensor& cos_sin) {
  LOOM_RETURN_IF_ERROR(
      internal::CheckTensor("ApplyRope", "cos_sin", cos_sin, DType::kF32, 2, true));
  const int64_t max_positions = cos_sin.size(0), head_dim = cos_sin.size(1);
  if (head_dim % 2 != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("ApplyRope: head_dim must be even, got ", head_dim));
  }
  LOOM_RETURN_IF_ERROR(
      internal::CheckTensor("ApplyRope", "positions", positions, DType::kI32, 1, true));
  const int64_t tokens = positions.size(0);
  LOOM_RETURN_IF_ERROR(CheckHeads("q", q, tokens, head_dim));
  LOOM_RETURN_IF_ERROR(CheckHeads("k", k, tokens, head_dim));
  // Every position is checked before anything is rotated, so an error leaves q and k untouched.
  const int32_t* pos = positions.data<int32_t>();
  for (int64_t i = 0; i < tokens; ++i) {
    if (pos[i] < 0 || pos[i] >= max_positions) {
      return absl::InvalidArgumentError(absl::StrCat("ApplyRope: position ", pos[i], " of token ",
                                                     i, " is outside the table of ", max_positions,
                                                     " positions"));
    }
  }
  RotateAll(q, pos, cos_sin.data<float>(), head_dim);
  RotateAll(k, pos, cos_sin.data<float>(), head_dim);
  return absl::OkStatus();
}

}  // namespace loom::kernels
