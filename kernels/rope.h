// Rotary position tables: default, linear and llama3 frequency scaling, as HF computes them.
#ifndef LOOM_KERNELS_ROPE_H_
#define LOOM_KERNELS_ROPE_H_

#include <string>

#include "absl/status/statusor.h"
#include "common/tensor.h"

namespace loom::kernels {

struct RopeScaling {
  std::string type = "default";  // "default", "linear", "llama3"
  double factor = 1.0;
  // llama3 only.
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 8192;
};

// f32 [max_positions, head_dim]: per position, head_dim/2 cos values then head_dim/2 sin values.
absl::StatusOr<Tensor> MakeRopeCosSin(int64_t head_dim, double theta, const RopeScaling& scaling,
                                      int64_t max_positions);

}  // namespace loom::kernels

#endif  // LOOM_KERNELS_ROPE_H_
