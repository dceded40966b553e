#include "kernels/rope.h"

#include <cmath>
#include <vector>

#include "absl/strings/str_cat.h"

namespace loom::kernels {

// Follows HF's rope initialisation: inv_freq in float32 from theta^(-2i/d); linear divides by
// the factor; llama3 keeps high frequencies, divides low ones by the factor, and blends between.
absl::StatusOr<Tensor> MakeRopeCosSin(int64_t head_dim, double theta, const RopeScaling& scaling,
                                      int64_t max_positions) {
  if (head_dim <= 0 || head_dim % 2 != 0) {
    return absl::InvalidArgumentError(absl::StrCat("rope head_dim must be even, got ", head_dim));
  }
  if (!(theta > 0) || max_positions <= 0) {
    return absl::InvalidArgumentError("rope theta and max positions must be positive");
  }
  const int64_t half = head_dim / 2;
  std::vector<float> inv_freq(half);
  for (int64_t i = 0; i < half; ++i) {
    // torch: 1.0 / (base ** (arange(0, dim, 2, dtype=int64).float() / dim)), in float32.
    float exponent = static_cast<float>(2 * i) / static_cast<float>(head_dim);
    inv_freq[i] = 1.0f / std::pow(static_cast<float>(theta), exponent);
  }
  if (scaling.type == "linear") {
    if (!(scaling.factor > 0)) return absl::InvalidArgumentError("rope linear factor must be > 0");
    for (float& f : inv_freq) f = f / static_cast<float>(scaling.factor);
  } else if (scaling.type == "llama3") {
    const double factor = scaling.factor, lo = scaling.low_freq_factor,
                 hi = scaling.high_freq_factor;
    const double old_ctx = static_cast<double>(scaling.original_max_position_embeddings);
    if (!(factor > 0) || !(hi > lo)) {
      return absl::InvalidArgumentError("rope llama3 needs factor > 0 and high_freq > low_freq");
    }
    const double low_wavelen = old_ctx / lo, high_wavelen = old_ctx / hi;
    for (float& f : inv_freq) {
      const double wavelen = 2 * M_PI / f;
      if (wavelen < high_wavelen) continue;
      if (wavelen > low_wavelen) {
        f = static_cast<float>(f / factor);
      } else {
        const double smooth = (old_ctx / wavelen - lo) / (hi - lo);
        f = static_cast<float>((1 - smooth) * f / factor + smooth * f);
      }
    }
  } else if (scaling.type != "default") {
    return absl::InvalidArgumentError(absl::StrCat("unsupported rope_scaling type \"",
                                                   scaling.type,
                                                   "\" (supported: default, linear, llama3)"));
  }
  Tensor table = Tensor::Empty(DType::kF32, {max_positions, head_dim});
  float* out = table.data<float>();
  for (int64_t p = 0; p < max_positions; ++p) {
    for (int64_t i = 0; i < half; ++i) {
      const float angle = static_cast<float>(p) * inv_freq[i];  // float32 product, as in HF
      out[p * head_dim + i] = std::cos(angle);
      out[p * head_dim + half + i] = std::sin(angle);
    }
  }
  return table;
}

}  // namespace loom::kernels
