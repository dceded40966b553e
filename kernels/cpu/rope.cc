#include "kernels/rope.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace loom::kernels {
namespace {

// torch: 1.0 / (base ** (arange(0, dim, 2).float() / dim)), all in float32.
std::vector<float> PowFrequencies(int64_t head_dim, float base) {
  std::vector<float> pos_freqs(static_cast<size_t>(head_dim / 2));
  for (int64_t i = 0; i < head_dim / 2; ++i) {
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(head_dim);
    pos_freqs[i] = std::pow(base, exponent);
  }
  return pos_freqs;
}

void Llama3(const RopeScalingConfig& s, std::vector<float>& inv_freq) {
  const double factor = s.factor, lo = s.low_freq_factor, hi = s.high_freq_factor;
  const double old_ctx = static_cast<double>(s.original_max_position_embeddings);
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
}

double YarnMscale(double scale, double mscale) {
  return scale <= 1 ? 1.0 : 0.1 * mscale * std::log(scale) + 1.0;
}

// HF's _compute_yarn_parameters: interpolated (÷ factor) frequencies for the long wavelengths,
// extrapolated (unchanged) ones for the short, a linear ramp between the dimensions that turn
// beta_fast and beta_slow times over the original context.
RopeFrequencies Yarn(int64_t head_dim, double theta, const RopeScalingConfig& s) {
  const double factor = s.factor, dim = static_cast<double>(head_dim);
  const double old_ctx = static_cast<double>(s.original_max_position_embeddings);
  auto correction_dim = [&](double rotations) {
    return dim * std::log(old_ctx / (rotations * 2 * M_PI)) / (2 * std::log(theta));
  };
  double low = correction_dim(s.beta_fast), high = correction_dim(s.beta_slow);
  if (s.truncate) {
    low = std::floor(low);
    high = std::ceil(high);
  }
  low = std::max(low, 0.0);
  high = std::min(high, dim - 1);
  if (low == high) high += 0.001;  // as HF: no singular ramp
  const std::vector<float> pos_freqs = PowFrequencies(head_dim, static_cast<float>(theta));
  RopeFrequencies out;
  out.inv_freq.resize(pos_freqs.size());
  for (size_t i = 0; i < pos_freqs.size(); ++i) {
    const float extrapolation = 1.0f / pos_freqs[i];
    const float interpolation = 1.0f / (static_cast<float>(factor) * pos_freqs[i]);
    const float ramp = std::clamp(
        (static_cast<float>(i) - static_cast<float>(low)) / static_cast<float>(high - low), 0.0f,
        1.0f);
    const float extrapolation_factor = 1.0f - ramp;
    out.inv_freq[i] = interpolation * (1.0f - extrapolation_factor) +
                      extrapolation * extrapolation_factor;
  }
  double attention = s.attention_factor;
  if (attention < 0) {
    attention = s.mscale != 0 && s.mscale_all_dim != 0
                    ? YarnMscale(factor, s.mscale) / YarnMscale(factor, s.mscale_all_dim)
                    : YarnMscale(factor, 1.0);
  }
  out.attention_factor = static_cast<float>(attention);
  return out;
}

}  // namespace

absl::StatusOr<RopeFrequencies> ComputeRopeFrequencies(int64_t head_dim, double theta,
                                                       const RopeScalingConfig& scaling,
                                                       int64_t max_position_embeddings,
                                                       int64_t seq_len) {
  if (head_dim <= 0 || head_dim % 2 != 0) {
    return absl::InvalidArgumentError(absl::StrCat("rope head_dim must be even, got ", head_dim));
  }
  if (!(theta > 0) || max_position_embeddings <= 0) {
    return absl::InvalidArgumentError("rope theta and max positions must be positive");
  }
  const std::string& type = scaling.type;
  if (type != "default" && !(scaling.factor > 0)) {
    return absl::InvalidArgumentError(absl::StrCat("rope ", type, " needs factor > 0"));
  }
  if (type == "yarn") {
    if (scaling.original_max_position_embeddings <= 0 || !(scaling.beta_fast > 0) ||
        !(scaling.beta_slow > 0)) {
      return absl::InvalidArgumentError(
          "rope yarn needs original_max_position_embeddings, beta_fast and beta_slow > 0");
    }
    return Yarn(head_dim, theta, scaling);
  }
  float base = static_cast<float>(theta);
  if (type == "dynamic" && seq_len > max_position_embeddings) {
    if (head_dim <= 2) return absl::InvalidArgumentError("rope dynamic needs head_dim > 2");
    // float32 throughout, as torch evaluates HF's expression on a tensor seq_len.
    const float factor = static_cast<float>(scaling.factor);
    const float ratio = factor * static_cast<float>(seq_len) /
                            static_cast<float>(max_position_embeddings) -
                        (factor - 1.0f);
    base = base * std::pow(ratio, static_cast<float>(static_cast<double>(head_dim) /
                                                     static_cast<double>(head_dim - 2)));
  }
  RopeFrequencies out;
  out.inv_freq = PowFrequencies(head_dim, base);
  for (float& f : out.inv_freq) f = 1.0f / f;
  if (type == "linear") {
    for (float& f : out.inv_freq) f = f / static_cast<float>(scaling.factor);
  } else if (type == "llama3") {
    if (!(scaling.high_freq_factor > scaling.low_freq_factor) ||
        scaling.original_max_position_embeddings <= 0) {
      return absl::InvalidArgumentError(
          "rope llama3 needs high_freq > low_freq and original_max_position_embeddings > 0");
    }
    Llama3(scaling, out.inv_freq);
  } else if (type != "default" && type != "dynamic") {
    return absl::InvalidArgumentError(
        absl::StrCat("unsupported rope_scaling type \"", type,
                     "\" (supported: default, linear, llama3, yarn, dynamic)"));
  }
  return out;
}

void RopeCosSinRow(const RopeFrequencies& f, int64_t position, float* row) {
  const size_t half = f.inv_freq.size();
  for (size_t i = 0; i < half; ++i) {
    const float angle = static_cast<float>(position) * f.inv_freq[i];  // float32, as in HF
    row[i] = std::cos(angle) * f.attention_factor;
    row[half + i] = std::sin(angle) * f.attention_factor;
  }
}

absl::StatusOr<Tensor> MakeRopeCosSin(int64_t head_dim, double theta,
                                      const RopeScalingConfig& scaling, int64_t max_positions) {
  LOOM_ASSIGN_OR_RETURN(RopeFrequencies f,
                        ComputeRopeFrequencies(head_dim, theta, scaling, max_positions));
  Tensor table = Tensor::Empty(DType::kF32, {max_positions, head_dim});
  for (int64_t p = 0; p < max_positions; ++p) RopeCosSinRow(f, p, table.data<float>() + p * head_dim);
  return table;
}

}  // namespace loom::kernels
