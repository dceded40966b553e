#include "worker/layers/parallel_linear.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "kernels/kernels.h"

namespace loom {

absl::StatusOr<ParallelLinear> ParallelLinear::Create(std::vector<LinearPart> parts,
                                                      int64_t in_features, bool has_bias,
                                                      ShardKind kind, int64_t tp_rank,
                                                      int64_t tp_size, DType weight_dtype) {
  if (tp_size < 1 || tp_rank < 0 || tp_rank >= tp_size) {
    return absl::InvalidArgumentError(absl::StrCat("bad tp rank ", tp_rank, " of ", tp_size));
  }
  int64_t local_out = 0;
  for (const LinearPart& p : parts) {
    if (kind == ShardKind::kColumn && p.out_features % tp_size != 0) {
      return absl::InvalidArgumentError(absl::StrCat(p.name, ": ", p.out_features,
                                                     " output features do not split over ",
                                                     tp_size, " ranks"));
    }
    local_out += kind == ShardKind::kColumn ? p.out_features / tp_size : p.out_features;
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
  layer.weight_ = Tensor::Empty(weight_dtype, {local_out, local_in});
  if (has_bias) layer.bias_ = Tensor::Empty(DType::kF32, {local_out});
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

std::vector<int64_t> ParallelLinear::FullShape(const std::string& name) const {
  for (const LinearPart& p : parts_) {
    if (name == p.name + ".weight") return {p.out_features, in_features_};
    if (name == p.name + ".bias") return {p.out_features};
  }
  return {};
}

absl::Status ParallelLinear::Load(const std::string& name, const Tensor& full) {
  int64_t local_offset = 0;
  for (const LinearPart& p : parts_) {
    const int64_t local_rows = kind_ == ShardKind::kColumn ? p.out_features / tp_size_
                                                           : p.out_features;
    const bool is_weight = name == p.name + ".weight";
    const bool is_bias = bias_.defined() && name == p.name + ".bias";
    if (!is_weight && !is_bias) {
      local_offset += local_rows;
      continue;
    }
    const std::vector<int64_t> want = FullShape(name);
    if (full.shape() != want) {
      return absl::InvalidArgumentError(absl::StrCat(name, ": expected shape ", ShapeString(want),
                                                     ", got ", ShapeString(full.shape())));
    }
    if (!IsFloat(full.dtype())) {
      return absl::InvalidArgumentError(absl::StrCat(name, ": expected a float tensor, got ",
                                                     DTypeName(full.dtype())));
    }
    // This rank's rows of the part (column) or columns of the weight (row).
    Tensor src = full;
    if (kind_ == ShardKind::kColumn) {
      LOOM_ASSIGN_OR_RETURN(src, full.Slice(0, tp_rank_ * local_rows, local_rows));
    } else if (kind_ == ShardKind::kRow && is_weight) {
      const int64_t cols = in_features_ / tp_size_;
      LOOM_ASSIGN_OR_RETURN(src, full.Slice(1, tp_rank_ * cols, cols));
    }
    Tensor& dst_full = is_weight ? weight_ : bias_;
    LOOM_ASSIGN_OR_RETURN(Tensor dst, dst_full.Slice(0, local_offset, local_rows));
    return dst.CopyFrom(src);
  }
  return absl::NotFoundError(absl::StrCat("no parameter ", name, " in this layer"));
}

absl::Status ParallelLinear::Forward(const Tensor& x, Tensor& out) const {
  // A row-parallel bias is added once, after the all-reduce, by rank 0 only.
  const bool add_bias = bias_.defined() && (kind_ != ShardKind::kRow || tp_rank_ == 0);
  return kernels::Linear(x, weight_, add_bias ? &bias_ : nullptr, out);
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
