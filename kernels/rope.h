// Rotary position frequencies and tables, as HF computes them: default, linear, llama3, yarn and
// dynamic (NTK) scaling.
//
// Dynamic scaling depends on the sequence: HF recomputes the frequencies in every forward call
// from the longest position it sees (seq_len = last position + 1, when that exceeds
// max_position_embeddings), and cached keys keep the rotation they were written with. Loom
// follows the same rule per sequence and step: the tokens a step computes for a sequence are
// rotated with the frequencies for that sequence's length after the step. This equals HF
// `generate` at batch 1 with a one-chunk prefill; a prompt prefilled in several chunks (or
// recomputed after preemption) is rotated chunk by chunk, as HF would rotate it fed the same way.
#ifndef LOOM_KERNELS_ROPE_H_
#define LOOM_KERNELS_ROPE_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model_config.h"
#include "common/tensor.h"

namespace loom::kernels {

struct RopeFrequencies {
  std::vector<float> inv_freq;    // head_dim / 2, f32 as HF computes them
  float attention_factor = 1.0f;  // cos and sin are multiplied by it (yarn)
};

// The frequencies for `scaling`. max_position_embeddings is the model's; `seq_len` matters only
// to dynamic scaling: the frequencies a sequence of that length uses (at or below
// max_position_embeddings: the unscaled ones).
absl::StatusOr<RopeFrequencies> ComputeRopeFrequencies(int64_t head_dim, double theta,
                                                       const RopeScalingConfig& scaling,
                                                       int64_t max_position_embeddings,
                                                       int64_t seq_len = 0);

// One table row for `position`: head_dim/2 cos values then head_dim/2 sin values.
void RopeCosSinRow(const RopeFrequencies& frequencies, int64_t position, float* row);

// f32 [max_positions, head_dim] of RopeCosSinRow for positions [0, max_positions), with the
// frequencies of ComputeRopeFrequencies(head_dim, theta, scaling, max_positions).
absl::StatusOr<Tensor> MakeRopeCosSin(int64_t head_dim, double theta,
                                      const RopeScalingConfig& scaling, int64_t max_positions);

}  // namespace loom::kernels

#endif  // LOOM_KERNELS_ROPE_H_
