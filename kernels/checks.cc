#include "kernels/checks.h"

#include <cmath>

#include "common/status.h"

namespace loom::kernels::internal {
namespace {

absl::Status CheckWeightType(const char* kernel, const char* name, const Tensor& t) {
  if (!t.defined() || !IsFloat(t.dtype())) {
    return absl::InvalidArgumentError(
        absl::StrCat(kernel, ": ", name, " must be F32, BF16 or F16, got ", t.DebugString()));
  }
  return CheckTensor(kernel, name, t, t.dtype(), 2, true);
}

absl::Status CheckNormWeightAndEps(const char* kernel, const Tensor& weight, int64_t h,
                                   float eps) {
  LOOM_RETURN_IF_ERROR(CheckTensor(kernel, "weight", weight, DType::kF32, 1, true));
  LOOM_RETURN_IF_ERROR(CheckShape(kernel, "weight", weight, {h}));
  if (!(eps >= 0.0f) || !std::isfinite(eps)) {
    return absl::InvalidArgumentError(absl::StrCat(kernel, ": eps must be finite and >= 0"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckLinear(const Tensor& x, const Tensor& w, const Tensor* bias, const Tensor& out) {
  constexpr const char* kName = "Linear";
  LOOM_RETURN_IF_ERROR(CheckTensor(kName, "x", x, DType::kF32, 2, true));
  LOOM_RETURN_IF_ERROR(CheckWeightType(kName, "w", w));
  const int64_t M = x.size(0), K = x.size(1), N = w.size(0);
  if (w.size(1) != K) {
    return absl::InvalidArgumentError(absl::StrCat("Linear: x ", x.DebugString(), " and w ",
                                                   w.DebugString(), " disagree on in_features"));
  }
  LOOM_RETURN_IF_ERROR(CheckTensor(kName, "out", out, DType::kF32, 2, true));
  LOOM_RETURN_IF_ERROR(CheckShape(kName, "out", out, {M, N}));
  if (bias != nullptr) {
    LOOM_RETURN_IF_ERROR(CheckTensor(kName, "bias", *bias, DType::kF32, 1, true));
    LOOM_RETURN_IF_ERROR(CheckShape(kName, "bias", *bias, {N}));
  }
  constexpr int64_t kIntMax = 0x7fffffff;
  if (M > kIntMax || N > kIntMax || K > kIntMax) {
    return absl::InvalidArgumentError("Linear: dimensions exceed the BLAS int range");
  }
  return absl::OkStatus();
}

absl::Status CheckRmsNorm(const Tensor& x, const Tensor& weight, float eps, const Tensor& out) {
  constexpr const char* kName = "RmsNorm";
  LOOM_RETURN_IF_ERROR(CheckTensor(kName, "x", x, DType::kF32, 2, true));
  LOOM_RETURN_IF_ERROR(CheckTensor(kName, "out", out, DType::kF32, 2, true));
  LOOM_RETURN_IF_ERROR(CheckShape(kName, "out", out, x.shape()));
  return CheckNormWeightAndEps(kName, weight, x.size(1), eps);
}

absl::Status CheckFusedAddRmsNorm(const Tensor& x, const Tensor& residual, const Tensor& weight,
                                  float eps) {
  constexpr const char* kName = "FusedAddRmsNorm";
  LOOM_RETURN_IF_ERROR(CheckTensor(kName, "x", x, DType::kF32, 2, true));
  LOOM_RETURN_IF_ERROR(CheckTensor(kName, "residual", residual, DType::kF32, 2, true));
  LOOM_RETURN_IF_ERROR(CheckShape(kName, "residual", residual, x.shape()));
  return CheckNormWeightAndEps(kName, weight, x.size(1), eps);
}

absl::Status CheckSiluAndMul(const Tensor& gate_up, const Tensor& out) {
  constexpr const char* kName = "SiluAndMul";
  LOOM_RETURN_IF_ERROR(CheckTensor(kName, "gate_up", gate_up, DType::kF32, 2, true));
  if (gate_up.size(1) % 2 != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "SiluAndMul: gate_up needs an even last dimension, got ", gate_up.DebugString()));
  }
  LOOM_RETURN_IF_ERROR(CheckTensor(kName, "out", out, DType::kF32, 2, true));
  return CheckShape(kName, "out", out, {gate_up.size(0), gate_up.size(1) / 2});
}

absl::Status CheckEmbedding(const Tensor& ids, const Tensor& table, int64_t vocab_start,
                            const Tensor& out) {
  constexpr const char* kName = "Embedding";
  LOOM_RETURN_IF_ERROR(CheckTensor(kName, "ids", ids, DType::kI32, 1, true));
  LOOM_RETURN_IF_ERROR(CheckWeightType(kName, "table", table));
  LOOM_RETURN_IF_ERROR(CheckTensor(kName, "out", out, DType::kF32, 2, true));
  LOOM_RETURN_IF_ERROR(CheckShape(kName, "out", out, {ids.size(0), table.size(1)}));
  if (vocab_start < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("Embedding: vocab_start must be >= 0, got ", vocab_start));
  }
  return absl::OkStatus();
}

absl::Status CheckAttentionBatch(const AttentionBatch& batch, int64_t tokens, int64_t num_blocks,
                                 int64_t block_size) {
  const size_t b = batch.context_len.size();
  if (batch.query_start.size() != b + 1 || batch.block_tables.size() != b) {
    return absl::InvalidArgumentError(absl::StrCat(
        "PagedAttention: batch has ", batch.query_start.size(), " query starts, ", b,
        " context lengths and ", batch.block_tables.size(), " block tables; want B+1, B, B"));
  }
  if (batch.query_start[0] != 0 || batch.query_start[b] != tokens) {
    return absl::InvalidArgumentError(
        absl::StrCat("PagedAttention: query_start must run from 0 to the ", tokens,
                     " query rows, got ", batch.query_start[0], "..", batch.query_start[b]));
  }
  for (size_t s = 0; s < b; ++s) {
    const int64_t n = static_cast<int64_t>(batch.query_start[s + 1]) - batch.query_start[s];
    const int64_t ctx = batch.context_len[s];
    if (n < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("PagedAttention: query_start decreases at sequence ", s));
    }
    if (ctx < n) {
      return absl::InvalidArgumentError(absl::StrCat("PagedAttention: sequence ", s, " has ", n,
                                                     " query rows but context_len ", ctx));
    }
    const auto& table = batch.block_tables[s];
    const int64_t needed = (ctx + block_size - 1) / block_size;
    if (static_cast<int64_t>(table.size()) < needed) {
      return absl::InvalidArgumentError(absl::StrCat(
          "PagedAttention: sequence ", s, " has context_len ", ctx, " but its block table covers ",
          static_cast<int64_t>(table.size()) * block_size, " tokens"));
    }
    for (int64_t i = 0; i < needed; ++i) {
      if (table[i] < 0 || table[i] >= num_blocks) {
        return absl::InvalidArgumentError(absl::StrCat(
            "PagedAttention: sequence ", s, " uses block ", table[i], " of ", num_blocks));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace loom::kernels::internal
