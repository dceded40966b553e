// Fuzzes a worker's step from the wire: the input is a serialized StepRequest (the bytes a
// Worker.Steps stream delivers), converted by StepFromProto and checked by CheckStep against a
// small model's limits. A step CheckStep accepts must index only what the limits allow: every
// position's block, token id and penalty id is checked here again the way the runner and the
// sampling kernels use them.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "common/sampling_params.h"
#include "loom/v1/worker.pb.h"
#include "worker/step_proto.h"

namespace {

constexpr loom::StepLimits kLimits{
    .vocab_size = 64, .max_positions = 256, .block_size = 4, .num_blocks = 32};

void Require(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  loom::v1::StepRequest request;
  if (!request.ParseFromArray(data, static_cast<int>(size))) return 0;
  const loom::StepInput step = loom::StepFromProto(request);
  Require(step.sequences.size() == static_cast<size_t>(request.sequences_size()));
  if (!loom::CheckStep(step, kLimits).ok()) return 0;
  for (const loom::SequenceStep& s : step.sequences) {
    Require(!s.token_ids.empty() && !s.padding);
    for (size_t i = 0; i < s.token_ids.size(); ++i) {
      Require(s.token_ids[i] >= 0 && s.token_ids[i] < kLimits.vocab_size);
      const int64_t pos = int64_t{s.start_position} + static_cast<int64_t>(i);
      Require(pos >= 0 && pos < kLimits.max_positions);
      const size_t block = static_cast<size_t>(pos / kLimits.block_size);
      Require(block < s.block_table.size());
    }
    for (int32_t b : s.block_table) Require(b >= 0 && b < kLimits.num_blocks);
    if (!s.sample) continue;
    Require(loom::ValidateSamplingParams(s.sampling).ok());
    Require(s.sampling.logprobs >= -1 && s.sampling.logprobs <= loom::kMaxTopLogprobs);
    Require(s.penalty_ids.size() == s.penalty_output_counts.size());
    for (size_t i = 0; i < s.penalty_ids.size(); ++i) {
      Require(s.penalty_ids[i] >= 0 && s.penalty_ids[i] < kLimits.vocab_size);
      Require(s.penalty_output_counts[i] >= 0);
    }
  }
  return 0;
}
