#include "worker/layers/parallel_linear.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "kernels/kernels.h"

namespace loom {

namespace {

// How a part's output rows are laid out on one rank.
struct PartRows {
  int64_t capacity = 0;  // rows of the rank's buffer given to the part (padding included)
  int64_t start = 0;     // first row of the full part that the rank holds
  int64_t rows = 0;      // rows of the full part that the rank holds (the rest is zero padding)
};

int64_t NumShards(const LinearPart& part, ShardKind kind, int64_t tp_size) {
  if (kind == ShardKind::kVocab) return tp_size;
  if (kind != ShardKind::kColumn) return 1;
  return part.num_shards > 0 ? part.num_shards : tp_size;
}

PartRows RowsOf(const LinearPart& part, ShardKind kind, int64_t tp_rank, int64_t tp_size) {
  const int64_t shards = NumShards(part, kind, tp_size);
  const int64_t shard = tp_rank * shards / tp_size;
  PartRows r;
  r.capacity = (part.out_features + shards - 1) / shards;
  r.start = std::min(shard * r.capacity, part.out_features);
  r.rows = std::min(r.capacity, part.out_features - r.start);
  return r;
}

}  // namespace

absl::StatusOr<ParallelLinear> ParallelLinear::Create(std::vector<LinearPart> parts,
                                                      int64_t in_features, bool has_bias,
                                                      ShardKind kind, int64_t tp_rank,
                                                      int64_t tp_size, DType weight_dtype,
                                                      kernels::ExecutionContext& context) {
  if (tp_size < 1 || tp_rank < 0 || tp_rank >= tp_size) {
    return absl::InvalidArgumentError(absl::StrCat("bad tp rank ", tp_rank, " of ", tp_size));
  }
  if (parts.empty()) return absl::InvalidArgumentError("a linear layer needs at least one part");
  if (kind == ShardKind::kVocab && (parts.size() != 1 || parts[0].out_features < tp_size)) {
    return absl::InvalidArgumentError(absl::StrCat(
        parts[0].name, ": a vocab-parallel layer has one part of at least ", tp_size, " rows"));
  }
  int64_t local_out = 0;
  for (const LinearPart& p : parts) {
    const int64_t shards = NumShards(p, kind, tp_size);
    if (kind == ShardKind::kColumn &&
        (shards < 1 || tp_size % shards != 0 || p.out_features % shards != 0)) {
      return absl::InvalidArgumentError(absl::StrCat(p.name, ": ", p.out_features,
                                                     " output features do not split into ",
                                                     shards, " shards over ", tp_size, " ranks"));
    }
    local_out += RowsOf(p, kind, tp_rank, tp_size).capacity;
  }
  if (kind == ShardKind::kRow && in_features % tp_size != 0) {
    return absl::InvalidArgumentError(absl::StrCat(parts[0].name, ": ", in_features,
                                                   " input features do not split over ",
                                                   tp_size, " ranks"));
  }
  const int64_t local_in = kind == ShardKind::kRow ? in_features / tp_size : in_features;
  ParallelLinear layer;
  layer.parts_ = std::move(parts);
  layer.in_features_ = in_features;
  layer.kind_ = kind;
  layer.tp_rank_ = tp_rank;
  layer.tp_size_ = tp_size;
  LOOM_ASSIGN_OR_RETURN(layer.weight_, context.Allocate(weight_dtype, {local_out, local_in}));
  if (has_bias) {
    LOOM_ASSIGN_OR_RETURN(layer.bias_, context.Allocate(DType::kF32, {local_out}));
  }
  return layer;
}

std::vector<std::string> ParallelLinear::ParameterNames() const {
  std::vector<std::string> names;
  for (const LinearPart& p : parts_) {
    names.push_back(p.name + ".weight");
    if (bias_.defined()) names.push_back(p.name + ".bias");
  }
  return names;
}

ParameterInfo ParallelLinear::Info(const std::string& name) const {
  ParameterInfo info;
  info.name = name;
  for (const LinearPart& p : parts_) {
    const bool is_weight = name == p.name + ".weight";
    if (!is_weight && name != p.name + ".bias") continue;
    info.shape = is_weight ? std::vector<int64_t>{p.out_features, in_features_}
                           : std::vector<int64_t>{p.out_features};
    if (kind_ == ShardKind::kRow) {
      // Row-parallel: the weight's input columns split; the bias (added once) is whole.
      if (is_weight) {
        info.split_dim = 1;
        info.length = in_features_ / tp_size_;
        info.start = tp_rank_ * info.length;
      }
    } else if (kind_ != ShardKind::kReplicated) {
      const PartRows rows = RowsOf(p, kind_, tp_rank_, tp_size_);
      info.split_dim = 0;
      info.start = rows.start;
      info.length = rows.rows;
    }
    return info;
  }
  return info;  // empty shape: not a parameter of this layer
}

absl::StatusOr<Tensor> ParallelLinear::Part(const std::string& name) const {
  int64_t local_offset = 0;
  for (const LinearPart& p : parts_) {
    const PartRows rows = RowsOf(p, kind_, tp_rank_, tp_size_);
    const bool is_weight = name == p.name + ".weight";
    const bool is_bias = bias_.defined() && name == p.name + ".bias";
    if (is_weight || is_bias) {
      // Padding rows past rows.rows were zeroed at Create and are never written.
      return (is_weight ? weight_ : bias_).Slice(0, local_offset, rows.rows);
    }
    local_offset += rows.capacity;
  }
  return absl::NotFoundError(absl::StrCat("no parameter ", name, " in this layer"));
}

absl::Status ParallelLinear::Forward(kernels::ExecutionContext& context, const Tensor& x,
                                     Tensor& out) const {
  // A row-parallel bias is added once, after the all-reduce, by rank 0 only.
  const bool add_bias = bias_.defined() && (kind_ != ShardKind::kRow || tp_rank_ == 0);
  return kernels::Linear(context, x, weight_, add_bias ? &bias_ : nullptr, out);
}

absl::Status ParallelLinear::TieWeight(const Tensor& weight) {
  if (weight.shape() != weight_.shape() || weight.dtype() != weight_.dtype()) {
    return absl::InvalidArgumentError(absl::StrCat("cannot tie ", weight_.DebugString(), " to ",
                                                   weight.DebugString()));
  }
  weight_ = weight;
  return absl::OkStatus();
}

}  // namespace loom
