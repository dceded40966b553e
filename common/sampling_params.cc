#include "common/sampling_params.h"

#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"

namespace loom {

absl::Status ValidateSamplingParams(const SamplingParams& params) {
  if (!std::isfinite(params.temperature) || params.temperature < 0.0f) {
    return absl::InvalidArgumentError(
        absl::StrCat("sampling temperature must be finite and >= 0, got ", params.temperature));
  }
  if (!(params.top_p > 0.0f && params.top_p <= 1.0f)) {
    return absl::InvalidArgumentError(
        absl::StrCat("sampling top_p must be in (0, 1], got ", params.top_p));
  }
  for (const auto& [name, value] : {std::pair{"presence_penalty", params.presence_penalty},
                                     std::pair{"frequency_penalty", params.frequency_penalty}}) {
    if (!(value >= -2.0f && value <= 2.0f)) {
      return absl::InvalidArgumentError(absl::StrCat(name, " must be in [-2, 2], got ", value));
    }
  }
  if (!(params.repetition_penalty > 0.0f) || !std::isfinite(params.repetition_penalty)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "repetition_penalty must be finite and > 0 (1 = none), got ", params.repetition_penalty));
  }
  if (params.logprobs < -1 || params.logprobs > kMaxTopLogprobs) {
    return absl::InvalidArgumentError(absl::StrCat("top logprobs must be in [0, ", kMaxTopLogprobs,
                                                   "], got ", params.logprobs));
  }
  return absl::OkStatus();
}

}  // namespace loom
