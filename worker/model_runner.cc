#include "worker/model_runner.h"

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "kernels/sampling.h"

namespace loom {

absl::StatusOr<std::unique_ptr<ModelRunner>> ModelRunner::Create(
    const ModelConfig& config, const ModelRunnerOptions& options) {
  auto runner = std::make_unique<ModelRunner>();
  LOOM_ASSIGN_OR_RETURN(runner->decoder_, Decoder::Create(config, options.decoder));
  LOOM_ASSIGN_OR_RETURN(runner->cache_,
                        KvCache::Create(runner->decoder_->CacheShape(options.block_size),
                                        options.kv_cache_bytes));
  return runner;
}

absl::StatusOr<StepOutput> ModelRunner::Execute(const StepInput& step) {
  if (step.sequences.empty()) return absl::InvalidArgumentError("step has no sequences");
  const int64_t bs = cache_.shape().block_size;
  std::vector<SamplingParams> params;
  std::vector<uint64_t> sample_index;
  StepOutput out;
  for (const SequenceStep& s : step.sequences) {
    const int64_t n = static_cast<int64_t>(s.token_ids.size());
    const int64_t context = s.start_position + n;
    if (n == 0 || s.start_position < 0) {
      return absl::InvalidArgumentError(absl::StrCat("sequence ", s.seq_id,
                                                     ": a step needs at least one token"));
    }
    if (static_cast<int64_t>(s.block_table.size()) * bs < context) {
      return absl::InvalidArgumentError(absl::StrCat("sequence ", s.seq_id, ": block table of ",
                                                     s.block_table.size(), " blocks cannot hold ",
                                                     context, " tokens"));
    }
    for (int32_t b : s.block_table) {
      if (b < 0 || b >= cache_.num_blocks()) {
        return absl::InvalidArgumentError(absl::StrCat("sequence ", s.seq_id, ": block id ", b,
                                                       " outside [0, ", cache_.num_blocks(), ")"));
      }
    }
    if (s.sample) {
      LOOM_RETURN_IF_ERROR(ValidateSamplingParams(s.sampling));
      params.push_back(s.sampling);
      sample_index.push_back(s.sample_index);
      out.seq_ids.push_back(s.seq_id);
    }
  }
  LOOM_ASSIGN_OR_RETURN(Tensor logits, decoder_->Forward(step, cache_));
  if (params.empty()) return out;
  LOOM_ASSIGN_OR_RETURN(out.tokens, kernels::Sample(logits, params, sample_index));
  // The logits live in the decoder's workspace, which the next step overwrites.
  if (step.return_logits) out.logits = logits.Clone();
  return out;
}

}  // namespace loom
