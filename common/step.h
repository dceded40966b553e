// One generation step as the controller describes it to a worker: which sequences run, their new
// tokens, where their KV lives, and how to sample. It mirrors the Step message of the worker
// protocol, and is what a rank runs whether the controller reaches it over gRPC or in process.
#ifndef LOOM_COMMON_STEP_H_
#define LOOM_COMMON_STEP_H_

#include <cstdint>
#include <vector>

#include "common/sampling_params.h"
#include "common/tensor.h"

namespace loom {

struct SequenceStep {
  int64_t seq_id = 0;
  std::vector<int32_t> token_ids;  // the tokens this step computes (a prompt chunk, or 1)
  int32_t start_position = 0;      // tokens already in the KV cache before token_ids[0]
  std::vector<int32_t> block_table;  // covers start_position + token_ids.size() slots
  bool sample = true;  // false for a prompt chunk that is not the prompt's last
  SamplingParams sampling;
  uint64_t sample_index = 0;  // which output token is drawn (keys the seeded RNG)
  // Fills a device graph's batch to its size: computed, never written to the KV cache, its
  // logits dropped (worker/decode_graphs.h). Never sent by the controller.
  bool padding = false;
  // With penalties (SamplingParams::has_penalties) on a sampled step: the distinct tokens of
  // the prompt and output so far, and how often each appears in the output (0: prompt only).
  std::vector<int32_t> penalty_ids;
  std::vector<int32_t> penalty_output_counts;
};

struct StepInput {
  std::vector<SequenceStep> sequences;
  bool return_logits = false;  // also return the logits rows that were sampled
  uint64_t weight_version = 0;  // the weights every rank must run it with; 0 = whatever serves
};

// A sampled token's log-probability under the model, and the most likely tokens' (descending).
struct TokenLogprobs {
  bool present = false;  // the sequence asked for them (SamplingParams::logprobs >= 0)
  float logprob = 0;
  std::vector<int32_t> top_ids;
  std::vector<float> top_logprobs;
};

struct StepOutput {
  // One entry per sequence with sample = true, in input order.
  std::vector<int64_t> seq_ids;
  std::vector<int32_t> tokens;
  // Per sampled sequence when any asked for them (else empty).
  std::vector<TokenLogprobs> logprobs;
  Tensor logits;  // [sampled, vocab] f32 when requested
};

}  // namespace loom

#endif  // LOOM_COMMON_STEP_H_
