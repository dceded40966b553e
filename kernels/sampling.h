// Turning logits into tokens: greedy, temperature, top-k, top-p, with per-request seeds.
#ifndef LOOM_KERNELS_SAMPLING_H_
#define LOOM_KERNELS_SAMPLING_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "common/tensor.h"

namespace loom::kernels {

struct SamplingParams {
  float temperature = 0.0f;  // 0 = greedy (argmax; lowest id wins ties)
  int32_t top_k = 0;         // 0 or negative = no limit
  float top_p = 1.0f;        // in (0, 1]
  uint64_t seed = 0;
};

// Validates ranges (temperature >= 0 and finite, top_p in (0, 1]); InvalidArgument otherwise.
absl::Status ValidateSamplingParams(const SamplingParams& params);

// One token per row of logits [B, V] (f32). `params[b]` and `step[b]` belong to row b; the
// random draw is a pure function of (seed, step), so the same seed gives the same tokens
// whatever else is in the batch.
absl::StatusOr<std::vector<int32_t>> Sample(const Tensor& logits,
                                            const std::vector<SamplingParams>& params,
                                            const std::vector<uint64_t>& step);

}  // namespace loom::kernels

#endif  // LOOM_KERNELS_SAMPLING_H_
