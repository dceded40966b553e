#include "worker/step_proto.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/sampling_params.h"
#include "common/status.h"

namespace loom {
namespace {

absl::Status Bad(const SequenceStep& s, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat("sequence ", s.seq_id, ": ", what));
}

}  // namespace

StepInput StepFromProto(const loom::v1::StepRequest& request) {
  StepInput input;
  input.weight_version = request.weight_version();
  input.return_logits = request.return_logits();
  input.sequences.reserve(request.sequences_size());
  for (const loom::v1::SequenceStep& s : request.sequences()) {
    SequenceStep& out = input.sequences.emplace_back();
    out.seq_id = s.seq_id();
    out.token_ids.assign(s.token_ids().begin(), s.token_ids().end());
    out.start_position = s.start_position();
    out.block_table.assign(s.block_table().begin(), s.block_table().end());
    out.sample = s.sample();
    const loom::v1::SamplingParams& p = s.sampling();
    out.sampling.temperature = p.temperature();
    out.sampling.top_k = p.top_k();
    out.sampling.top_p = p.top_p() == 0 ? 1.0f : p.top_p();
    out.sampling.seed = p.seed();
    // k + 1 on the wire; a negative count (k + 1 < 0) stays one ValidateSamplingParams refuses,
    // and INT32_MIN is not decremented past the type.
    out.sampling.logprobs = p.logprobs() < 0 ? -2 : p.logprobs() - 1;
    out.sampling.presence_penalty = p.presence_penalty();
    out.sampling.frequency_penalty = p.frequency_penalty();
    out.sampling.repetition_penalty =
        p.repetition_penalty() == 0 ? 1.0f : p.repetition_penalty();
    out.sample_index = s.sample_index();
    out.penalty_ids.assign(s.penalty_ids().begin(), s.penalty_ids().end());
    out.penalty_output_counts.assign(s.penalty_output_counts().begin(),
                                     s.penalty_output_counts().end());
  }
  return input;
}

absl::Status CheckStep(const StepInput& step, const StepLimits& limits) {
  if (step.sequences.empty()) return absl::InvalidArgumentError("step has no sequences");
  if (limits.block_size <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("block size ", limits.block_size, " is not > 0"));
  }
  for (const SequenceStep& s : step.sequences) {
    if (s.token_ids.empty()) return Bad(s, "a step needs at least one token");
    for (int32_t t : s.token_ids) {
      if (t < 0 || t >= limits.vocab_size) {
        return Bad(s, absl::StrCat("token id ", t, " outside [0, ", limits.vocab_size, ")"));
      }
    }
    const int64_t end = int64_t{s.start_position} + static_cast<int64_t>(s.token_ids.size());
    if (s.start_position < 0 || end > limits.max_positions) {
      return Bad(s, absl::StrCat("positions [", s.start_position, ", ", end,
                                 ") outside the model's ", limits.max_positions, " positions"));
    }
    // Every id must name a block, not only those the positions reach: the attention kernels
    // take the whole table.
    const int64_t blocks = static_cast<int64_t>(s.block_table.size());
    if (blocks < (end + limits.block_size - 1) / limits.block_size) {
      return Bad(s, absl::StrCat("block table of ", blocks, " blocks for ", end,
                                 " tokens in blocks of ", limits.block_size));
    }
    for (int32_t b : s.block_table) {
      if (b < 0 || b >= limits.num_blocks) {
        return Bad(s, absl::StrCat("block id ", b, " outside [0, ", limits.num_blocks, ")"));
      }
    }
    if (!s.sample) continue;
    absl::Status sampling = ValidateSamplingParams(s.sampling);
    if (!sampling.ok()) return Bad(s, std::string(sampling.message()));
    if (s.penalty_ids.size() != s.penalty_output_counts.size()) {
      return Bad(s, absl::StrCat(s.penalty_ids.size(), " penalty ids but ",
                                 s.penalty_output_counts.size(), " counts"));
    }
    for (size_t i = 0; i < s.penalty_ids.size(); ++i) {
      if (s.penalty_ids[i] < 0 || s.penalty_ids[i] >= limits.vocab_size ||
          s.penalty_output_counts[i] < 0) {
        return Bad(s, absl::StrCat("penalty token ", s.penalty_ids[i], " (count ",
                                   s.penalty_output_counts[i], ") outside [0, ",
                                   limits.vocab_size, ")"));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace loom
