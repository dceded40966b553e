// What a device implements: one virtual per kernel of kernels.h, with the same semantics. The
// entry points in kernels.h check the tensors' devices and the arguments every device shares
// (kernels/checks.h), then call these; an implementation checks only what is its own (which
// cache dtypes it stores, indices only the device sees). Implementations: kernels/cpu
// (the reference) and kernels/cuda.
#ifndef LOOM_KERNELS_BACKEND_H_
#define LOOM_KERNELS_BACKEND_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/sampling_params.h"
#include "common/tensor.h"
#include "kernels/kernels.h"

namespace loom::kernels {

class Backend {
 public:
  virtual ~Backend() = default;

  virtual absl::Status Linear(const Tensor& x, const Tensor& w, const Tensor* bias,
                              Tensor& out) = 0;
  virtual absl::Status RmsNorm(const Tensor& x, const Tensor& weight, float eps, Tensor& out) = 0;
  virtual absl::Status FusedAddRmsNorm(Tensor& x, Tensor& residual, const Tensor& weight,
                                       float eps) = 0;
  virtual absl::Status ApplyRope(Tensor& q, Tensor& k, const Tensor& positions,
                                 const Tensor& cos_sin) = 0;
  virtual absl::Status SiluAndMul(const Tensor& gate_up, Tensor& out) = 0;
  virtual absl::Status Embedding(const Tensor& ids, const Tensor& table, int64_t vocab_start,
                                 Tensor& out) = 0;
  virtual absl::Status WriteKvCache(const Tensor& k, const Tensor& v, const Tensor& slot_mapping,
                                    Tensor& k_cache, Tensor& v_cache) = 0;
  virtual absl::StatusOr<std::unique_ptr<AttentionPlan>> PlanAttention(const AttentionBatch& batch,
                                                                       const Tensor& q,
                                                                       const Tensor& k_cache,
                                                                       int64_t fixed_max_keys) = 0;
  virtual absl::Status PagedAttention(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache,
                                      const AttentionPlan& plan, float scale, int64_t window,
                                      Tensor& out) = 0;
  virtual absl::Status Copy(const Tensor& src, Tensor& dst) = 0;
  virtual absl::Status GatherRows(const Tensor& x, const Tensor& rows, Tensor& out) = 0;
  virtual absl::Status ApplyPenalties(Tensor& logits, const std::vector<PenaltyRow>& rows) = 0;
  virtual absl::Status FillHashUniform(const HashFill& fill, Tensor& out) = 0;
  virtual absl::StatusOr<std::vector<int32_t>> Sample(const Tensor& logits,
                                                      const std::vector<SamplingParams>& params,
                                                      const std::vector<uint64_t>& step) = 0;
};

}  // namespace loom::kernels

#endif  // LOOM_KERNELS_BACKEND_H_
