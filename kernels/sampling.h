// Turning logits into tokens: greedy, temperature, top-k, top-p, with per-request seeds.
#ifndef LOOM_KERNELS_SAMPLING_H_
#define LOOM_KERNELS_SAMPLING_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "common/sampling_params.h"
#include "common/tensor.h"
#include "kernels/execution_context.h"

namespace loom::kernels {

// One token per row of logits [B, V] (f32). `params[b]` and `step[b]` belong to row b; the
// random draw is a pure function of (seed, step), so the same seed gives the same tokens
// whatever else is in the batch.
// Logits live on the context's device; the tokens come back to the host (the call waits).
absl::StatusOr<std::vector<int32_t>> Sample(ExecutionContext& context, const Tensor& logits,
                                            const std::vector<SamplingParams>& params,
                                            const std::vector<uint64_t>& step);

}  // namespace loom::kernels

#endif  // LOOM_KERNELS_SAMPLING_H_
