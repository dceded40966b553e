// A linear layer that holds this tensor-parallel rank's shard of its weight, possibly fused from
// several HF tensors (q/k/v into qkv, gate/up into gate_up).
//
// Column-parallel layers split the output features (each fused part separately, so every rank
// gets its own q, k and v heads); row-parallel layers split the input features and leave the sum
// across ranks to the caller's all-reduce; replicated layers keep the whole weight. Vocab-parallel
// layers (the LM head) are column-parallel with the last shard zero-padded, so a vocabulary that
// tp_size does not divide still splits; the caller drops the padded outputs. The buffers live on
// the context's device, allocated once at Create; loads write into the Part views, so pointers
// stay stable across reloads.
//
// A column part may be cut into fewer shards than there are ranks (LinearPart::num_shards): with
// fewer KV heads than ranks each KV head is replicated on tp_size / num_kv_heads consecutive
// ranks, as vLLM does, and rank r holds shard r * num_shards / tp_size.
#ifndef LOOM_WORKER_LAYERS_PARALLEL_LINEAR_H_
#define LOOM_WORKER_LAYERS_PARALLEL_LINEAR_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/tensor.h"
#include "kernels/execution_context.h"
#include "worker/model/parameter_info.h"

namespace loom {

enum class ShardKind { kReplicated, kColumn, kRow, kVocab };

struct LinearPart {
  std::string name;          // HF name without the ".weight"/".bias" suffix
  int64_t out_features = 0;  // full (unsharded) size
  // Column only: how many distinct shards the part is cut into; 0 means tp_size. Otherwise it
  // must divide tp_size, and each shard is replicated on tp_size / num_shards ranks.
  int64_t num_shards = 0;
};

class ParallelLinear {
 public:
  // `parts` are fused along the output dim in order. Sizes must divide by the number of shards
  // of the split dimension (checked by Create); a vocab-parallel layer has one part and pads.
  static absl::StatusOr<ParallelLinear> Create(std::vector<LinearPart> parts, int64_t in_features,
                                               bool has_bias, ShardKind kind, int64_t tp_rank,
                                               int64_t tp_size, DType weight_dtype,
                                               kernels::ExecutionContext& context);

  // Names this layer loads: "<part>.weight" (and "<part>.bias").
  std::vector<std::string> ParameterNames() const;
  // Parameter `name` (one of ParameterNames()): full HF shape and the region this rank holds.
  ParameterInfo Info(const std::string& name) const;
  // A view of this rank's part of `name` in the layer's buffer (padding excluded).
  absl::StatusOr<Tensor> Part(const std::string& name) const;

  // out[M, local_out] = x[M, local_in] · Wᵀ (+ bias).
  absl::Status Forward(kernels::ExecutionContext& context, const Tensor& x, Tensor& out) const;

  // Includes a vocab-parallel layer's padding: ceil(out_features / tp_size) rows per rank.
  int64_t local_out_features() const { return weight_.size(0); }
  int64_t local_in_features() const { return weight_.size(1); }
  const Tensor& weight() const { return weight_; }
  // Shares another layer's weight (tied LM head and embedding). Shapes must match.
  absl::Status TieWeight(const Tensor& weight);

 private:
  std::vector<LinearPart> parts_;
  int64_t in_features_ = 0;
  ShardKind kind_ = ShardKind::kReplicated;
  int64_t tp_rank_ = 0, tp_size_ = 1;
  Tensor weight_;  // [local_out, local_in]
  Tensor bias_;    // [local_out] f32, undefined when there is none
};

}  // namespace loom

#endif  // LOOM_WORKER_LAYERS_PARALLEL_LINEAR_H_
