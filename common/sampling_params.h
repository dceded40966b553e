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
  // Log-probabilities to return with the token, from the model's own distribution (the raw
  // logits, before temperature, top-k and top-p): -1 none, 0 the chosen token's, k > 0 also the
  // k most likely tokens' (at most kMaxTopLogprobs).
  int32_t logprobs = -1;
  // OpenAI's penalties on the output so far (vLLM's semantics): each logit drops by
  // frequency × its token's count in the output plus presence when that count is > 0.
  float presence_penalty = 0.0f;   // in [-2, 2]
  float frequency_penalty = 0.0f;  // in [-2, 2]
  // HF's repetition penalty over prompt and output: a positive logit of a token seen so far is
  // divided by it, a negative one multiplied. 1 = none; > 0.
  float repetition_penalty = 1.0f;

  bool has_penalties() const {
    return presence_penalty != 0.0f || frequency_penalty != 0.0f || repetition_penalty != 1.0f;
  }
};

inline constexpr int32_t kMaxTopLogprobs = 20;

// Validates ranges (temperature >= 0 and finite, top_p in (0, 1], logprobs in
// [-1, kMaxTopLogprobs], penalties as above); InvalidArgument otherwise.
absl::Status ValidateSamplingParams(const SamplingParams& params);

}  // namespace loom

#endif  // LOOM_COMMON_SAMPLING_PARAMS_H_
