// How one sequence's next token is drawn: what a client asks for, what a step carries to the
// ranks, and what the sampling kernels take.
#ifndef LOOM_COMMON_SAMPLING_PARAMS_H_
#define LOOM_COMMON_SAMPLING_PARAMS_H_

#include <cstdint>

#include "absl/status/status.h"

namespace loom {

struct SamplingParams {
  float temperature = 0.0f;  // 0 = greedy (argmax; lowest id wins ties)
  int32_t top_k = 0;         // 0 or negative = no limit
  float top_p = 1.0f;        // in (0, 1]
  uint64_t seed = 0;
};

// Validates ranges (temperature >= 0 and finite, top_p in (0, 1]); InvalidArgument otherwise.
absl::Status ValidateSamplingParams(const SamplingParams& params);

}  // namespace loom

#endif  // LOOM_COMMON_SAMPLING_PARAMS_H_
