// kernels.h's entry points: the devices of the tensors, then the checks every device shares
// (kernels/checks.h), then the context's Backend.
#include <cmath>
#include <initializer_list>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "kernels/backend.h"
#include "kernels/checks.h"
#include "kernels/kernels.h"
#include "kernels/sampling.h"

namespace loom::kernels {

absl::Status CheckOnDevice(const ExecutionContext& context, const char* kernel,
                           std::initializer_list<std::pair<const char*, const Tensor*>> tensors) {
  const Device device = context.device();
  for (const auto& [name, t] : tensors) {
    if (t != nullptr && t->defined() && t->device() != device) {
      return absl::InvalidArgumentError(absl::StrCat(kernel, ": ", name, " is on ",
                                                     t->device().ToString(), ", the context on ",
                                                     device.ToString()));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<Tensor> OnHost(ExecutionContext& context, const Tensor& t) {
  if (t.device().is_cpu()) return t;
  LOOM_RETURN_IF_ERROR(CheckOnDevice(context, "OnHost", {{"t", &t}}));
  Tensor host = Tensor::Empty(t.dtype(), t.shape());
  LOOM_RETURN_IF_ERROR(context.Download(t, host));
  return host;
}

absl::Status Linear(ExecutionContext& context, const Tensor& x, const Tensor& w, const Tensor* bias,
                    Tensor& out) {
  LOOM_RETURN_IF_ERROR(
      CheckOnDevice(context, "Linear", {{"x", &x}, {"w", &w}, {"bias", bias}, {"out", &out}}));
  LOOM_RETURN_IF_ERROR(internal::CheckLinear(x, w, bias, out));
  return context.backend().Linear(x, w, bias, out);
}

absl::Status RmsNorm(ExecutionContext& context, const Tensor& x, const Tensor& weight, float eps,
                     Tensor& out) {
  LOOM_RETURN_IF_ERROR(
      CheckOnDevice(context, "RmsNorm", {{"x", &x}, {"weight", &weight}, {"out", &out}}));
  LOOM_RETURN_IF_ERROR(internal::CheckRmsNorm(x, weight, eps, out));
  return context.backend().RmsNorm(x, weight, eps, out);
}

absl::Status FusedAddRmsNorm(ExecutionContext& context, Tensor& x, Tensor& residual,
                             const Tensor& weight, float eps) {
  LOOM_RETURN_IF_ERROR(CheckOnDevice(context, "FusedAddRmsNorm",
                                     {{"x", &x}, {"residual", &residual}, {"weight", &weight}}));
  LOOM_RETURN_IF_ERROR(internal::CheckFusedAddRmsNorm(x, residual, weight, eps));
  return context.backend().FusedAddRmsNorm(x, residual, weight, eps);
}

absl::Status ApplyRope(ExecutionContext& context, Tensor& q, Tensor& k, const Tensor& positions,
                       const Tensor& cos_sin) {
  LOOM_RETURN_IF_ERROR(
      CheckOnDevice(context, "ApplyRope",
                    {{"q", &q}, {"k", &k}, {"positions", &positions}, {"cos_sin", &cos_sin}}));
  return context.backend().ApplyRope(q, k, positions, cos_sin);
}

absl::Status SiluAndMul(ExecutionContext& context, const Tensor& gate_up, Tensor& out) {
  LOOM_RETURN_IF_ERROR(
      CheckOnDevice(context, "SiluAndMul", {{"gate_up", &gate_up}, {"out", &out}}));
  LOOM_RETURN_IF_ERROR(internal::CheckSiluAndMul(gate_up, out));
  return context.backend().SiluAndMul(gate_up, out);
}

absl::Status Embedding(ExecutionContext& context, const Tensor& ids, const Tensor& table,
                       int64_t vocab_start, Tensor& out) {
  LOOM_RETURN_IF_ERROR(
      CheckOnDevice(context, "Embedding", {{"ids", &ids}, {"table", &table}, {"out", &out}}));
  LOOM_RETURN_IF_ERROR(internal::CheckEmbedding(ids, table, vocab_start, out));
  return context.backend().Embedding(ids, table, vocab_start, out);
}

absl::Status WriteKvCache(ExecutionContext& context, const Tensor& k, const Tensor& v,
                          const Tensor& slot_mapping, Tensor& k_cache, Tensor& v_cache) {
  LOOM_RETURN_IF_ERROR(CheckOnDevice(context, "WriteKvCache",
                                     {{"k", &k},
                                      {"v", &v},
                                      {"slot_mapping", &slot_mapping},
                                      {"k_cache", &k_cache},
                                      {"v_cache", &v_cache}}));
  return context.backend().WriteKvCache(k, v, slot_mapping, k_cache, v_cache);
}

absl::StatusOr<std::unique_ptr<AttentionPlan>> PlanAttention(ExecutionContext& context,
                                                             const AttentionBatch& batch,
                                                             const Tensor& q, const Tensor& k_cache,
                                                             int64_t fixed_max_keys) {
  LOOM_RETURN_IF_ERROR(CheckOnDevice(context, "PlanAttention", {{"q", &q}, {"k_cache", &k_cache}}));
  if (fixed_max_keys < 0) {
    return absl::InvalidArgumentError("PlanAttention: fixed_max_keys must be >= 0");
  }
  for (int32_t c : batch.context_len) {
    if (fixed_max_keys > 0 && c > fixed_max_keys) {
      return absl::InvalidArgumentError(absl::StrCat(
          "PlanAttention: a context of ", c, " keys is over the plan's fixed ", fixed_max_keys));
    }
  }
  return context.backend().PlanAttention(batch, q, k_cache, fixed_max_keys);
}

absl::Status PagedAttention(ExecutionContext& context, const Tensor& q, const Tensor& k_cache,
                            const Tensor& v_cache, const AttentionPlan& plan, float scale,
                            int64_t window, Tensor& out) {
  LOOM_RETURN_IF_ERROR(
      CheckOnDevice(context, "PagedAttention",
                    {{"q", &q}, {"k_cache", &k_cache}, {"v_cache", &v_cache}, {"out", &out}}));
  return context.backend().PagedAttention(q, k_cache, v_cache, plan, scale, window, out);
}

absl::Status PagedAttention(ExecutionContext& context, const Tensor& q, const Tensor& k_cache,
                            const Tensor& v_cache, const AttentionBatch& batch, float scale,
                            int64_t window, Tensor& out) {
  LOOM_ASSIGN_OR_RETURN(std::unique_ptr<AttentionPlan> plan,
                        PlanAttention(context, batch, q, k_cache));
  return PagedAttention(context, q, k_cache, v_cache, *plan, scale, window, out);
}

absl::Status Copy(ExecutionContext& context, const Tensor& src, Tensor& dst) {
  LOOM_RETURN_IF_ERROR(CheckOnDevice(context, "Copy", {{"src", &src}, {"dst", &dst}}));
  if (!src.defined() || !dst.defined() || src.dtype() != dst.dtype() ||
      src.shape() != dst.shape() || !dst.is_contiguous() ||
      !(src.is_contiguous() || (src.dim() == 2 && src.strides()[1] == 1))) {
    return absl::InvalidArgumentError(
        absl::StrCat("Copy: cannot copy ", src.DebugString(), " into ", dst.DebugString(),
                     " (same dtype and shape; dst contiguous; src contiguous or 2-D rows)"));
  }
  return context.backend().Copy(src, dst);
}

absl::Status GatherRows(ExecutionContext& context, const Tensor& x, const Tensor& rows,
                        Tensor& out) {
  constexpr const char* kName = "GatherRows";
  LOOM_RETURN_IF_ERROR(CheckOnDevice(context, kName, {{"x", &x}, {"rows", &rows}, {"out", &out}}));
  LOOM_RETURN_IF_ERROR(internal::CheckTensor(kName, "x", x, DType::kF32, 2, false));
  LOOM_RETURN_IF_ERROR(internal::CheckTensor(kName, "rows", rows, DType::kI32, 1, true));
  LOOM_RETURN_IF_ERROR(internal::CheckTensor(kName, "out", out, DType::kF32, 2, true));
  LOOM_RETURN_IF_ERROR(internal::CheckShape(kName, "out", out, {rows.size(0), x.size(1)}));
  if (x.size(1) > 1 && x.strides()[1] != 1) {
    return absl::InvalidArgumentError("GatherRows: x needs contiguous rows");
  }
  return context.backend().GatherRows(x, rows, out);
}

absl::Status ApplyPenalties(ExecutionContext& context, Tensor& logits,
                            const std::vector<PenaltyRow>& rows) {
  constexpr const char* kName = "ApplyPenalties";
  LOOM_RETURN_IF_ERROR(CheckOnDevice(context, kName, {{"logits", &logits}}));
  LOOM_RETURN_IF_ERROR(internal::CheckTensor(kName, "logits", logits, DType::kF32, 2, true));
  if (static_cast<int64_t>(rows.size()) != logits.size(0)) {
    return absl::InvalidArgumentError(absl::StrCat(kName, ": ", rows.size(), " rows for ",
                                                   logits.DebugString()));
  }
  const int64_t vocab = logits.size(1);
  for (size_t r = 0; r < rows.size(); ++r) {
    const PenaltyRow& p = rows[r];
    if (p.ids.size() != p.output_counts.size()) {
      return absl::InvalidArgumentError(absl::StrCat(kName, ": row ", r, " has ", p.ids.size(),
                                                     " ids and ", p.output_counts.size(),
                                                     " counts"));
    }
    if (!(p.repetition > 0.0f) || !std::isfinite(p.presence) || !std::isfinite(p.frequency)) {
      return absl::InvalidArgumentError(absl::StrCat(kName, ": row ", r, ": bad penalties"));
    }
    for (size_t i = 0; i < p.ids.size(); ++i) {
      if (p.ids[i] < 0 || p.ids[i] >= vocab || p.output_counts[i] < 0) {
        return absl::InvalidArgumentError(absl::StrCat(kName, ": row ", r, ": token ", p.ids[i],
                                                       " outside [0, ", vocab, ")"));
      }
    }
  }
  return context.backend().ApplyPenalties(logits, rows);
}

absl::Status FillHashUniform(ExecutionContext& context, const HashFill& fill, Tensor& out) {
  constexpr const char* kName = "FillHashUniform";
  LOOM_RETURN_IF_ERROR(CheckOnDevice(context, kName, {{"out", &out}}));
  if (!out.defined() || !IsFloat(out.dtype()) || !out.is_contiguous()) {
    return absl::InvalidArgumentError(
        absl::StrCat(kName, ": out must be a contiguous float tensor, got ", out.DebugString()));
  }
  if (fill.outer < 0 || fill.rows < 0 || fill.inner < 0 || fill.start < 0 ||
      fill.start + fill.rows > fill.full_rows || fill.outer * fill.rows * fill.inner != out.numel() ||
      !std::isfinite(fill.range)) {
    return absl::InvalidArgumentError(absl::StrCat(
        kName, ": region [", fill.outer, ", ", fill.rows, " of ", fill.full_rows, " from ",
        fill.start, ", ", fill.inner, "] does not describe ", out.DebugString()));
  }
  if (out.numel() == 0) return absl::OkStatus();
  return context.backend().FillHashUniform(fill, out);
}

absl::StatusOr<std::vector<int32_t>> Sample(ExecutionContext& context, const Tensor& logits,
                                            const std::vector<SamplingParams>& params,
                                            const std::vector<uint64_t>& step) {
  LOOM_RETURN_IF_ERROR(CheckOnDevice(context, "Sample", {{"logits", &logits}}));
  return context.backend().Sample(logits, params, step);
}

}  // namespace loom::kernels
