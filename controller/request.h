// What a client asks for, and what it gets back.
#ifndef LOOM_CONTROLLER_REQUEST_H_
#define LOOM_CONTROLLER_REQUEST_H_

#include <cstdint>
#include <string>
#include <vector>

#include "common/sampling_params.h"

namespace loom {

struct GenerationRequest {
  std::vector<int32_t> prompt_ids;
  SamplingParams sampling;
  int64_t max_tokens = 16;
  std::vector<int32_t> stop_token_ids;  // in addition to the model's eos ids
  // Generation ends before the first of these appears in the text (matched on the detokenized
  // text, across token boundaries; the stop string is not returned). Needs a tokenizer.
  std::vector<std::string> stop_strings;
  bool ignore_eos = false;
  // Each sampled token's logits row (the whole vocabulary, f32) travels with it: for reference
  // tests and tools. Costs vocab floats per token on the wire.
  bool return_logits = false;
};

enum class FinishReason { kNone, kLength, kStop, kAbort };
const char* FinishReasonName(FinishReason reason);

struct GenerationResult {
  int64_t request_id = 0;
  std::vector<int32_t> output_ids;
  FinishReason finish_reason = FinishReason::kNone;
  int64_t num_preemptions = 0;
};

}  // namespace loom

#endif  // LOOM_CONTROLLER_REQUEST_H_
