// A step from the wire: the worker protocol's StepRequest (proto/loom/v1/worker.proto) as the
// StepInput a rank runs, and the checks every step passes before a table is indexed with it.
//
// A step's numbers come from another process (the controller, or whatever reached the worker's
// socket), so nothing in them is trusted: StepFromProto converts any message, however odd, into a
// StepInput without undefined behaviour, and CheckStep refuses every value the runner, the
// decoder or the sampling kernels would index out of bounds with. A step that passes CheckStep
// touches only the token ids, positions and KV blocks its limits allow.
// Pure functions; thread-safe.
#ifndef LOOM_WORKER_STEP_PROTO_H_
#define LOOM_WORKER_STEP_PROTO_H_

#include <cstdint>

#include "absl/status/status.h"
#include "common/step.h"
#include "loom/v1/worker.pb.h"

namespace loom {

// What a rank can run: its model's vocabulary and positions, its KV cache's blocks.
struct StepLimits {
  int64_t vocab_size = 0;     // token ids and penalty ids in [0, vocab_size)
  int64_t max_positions = 0;  // start_position + len(token_ids) <= max_positions
  int64_t block_size = 0;     // KV slots per block (> 0)
  int64_t num_blocks = 0;     // block ids in [0, num_blocks)
};

// The message's fields as StepInput's. Proto zeros mean "unset" where the protocol says so
// (top_p 0 = 1, repetition_penalty 0 = 1, logprobs 0 = none); an out-of-range logprobs count
// becomes one that ValidateSamplingParams refuses.
StepInput StepFromProto(const loom::v1::StepRequest& request);

// OK when every sequence has tokens, its token ids are in the vocabulary, its positions are in
// [0, max_positions) and covered by its block table, whose ids name existing blocks; and, for a
// sampled sequence, its sampling parameters are valid and its penalty ids (as many as their
// counts, counts >= 0) are in the vocabulary. Else InvalidArgument naming the sequence and value.
absl::Status CheckStep(const StepInput& step, const StepLimits& limits);

}  // namespace loom

#endif  // LOOM_WORKER_STEP_PROTO_H_
