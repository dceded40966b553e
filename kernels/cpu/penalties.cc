// ApplyPenalties on the host: the arguments were checked by kernels.h's entry point.
#include "kernels/cpu/cpu_kernels.h"

namespace loom::kernels {

absl::Status cpu::ApplyPenalties(Tensor& logits, const std::vector<PenaltyRow>& rows) {
  const int64_t vocab = logits.size(1);
  for (size_t r = 0; r < rows.size(); ++r) {
    const PenaltyRow& p = rows[r];
    float* row = logits.data<float>() + static_cast<int64_t>(r) * vocab;
    for (size_t i = 0; i < p.ids.size(); ++i) {
      float& logit = row[p.ids[i]];
      if (p.repetition != 1.0f) logit = logit > 0 ? logit / p.repetition : logit * p.repetition;
      const int32_t count = p.output_counts[i];
      logit -= p.frequency * static_cast<float>(count) + (count > 0 ? p.presence : 0.0f);
    }
  }
  return absl::OkStatus();
}

}  // namespace loom::kernels
