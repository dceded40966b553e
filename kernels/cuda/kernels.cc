// Host side of the element-wise CUDA kernels and Linear: the entry points' argument checks
// (kernels/checks.h, the CPU kernels' too), then a launch (kernels/cuda/elementwise.cu) or a
// cuBLAS call on the context's stream.
#include <cmath>
#include <cstdint>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "kernels/checks.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/host_util.h"
#include "kernels/cuda/launch.h"

namespace loom::kernels::cuda {
namespace {

using internal::CheckHeads;
using internal::CheckStored;
using internal::HeadsView;
using internal::ToStorage;
using ::loom::kernels::internal::CheckShape;
using ::loom::kernels::internal::CheckTensor;

HeadsView ViewOf(const Tensor& t) {
  return HeadsView{t.data<float>(), t.strides()[0], t.strides()[1], t.size(1)};
}

}  // namespace

absl::Status Linear(DeviceContext& context, const Tensor& x, const Tensor& w, const Tensor* bias,
                    Tensor& out) {
  LOOM_RETURN_IF_ERROR(::loom::kernels::internal::CheckLinear(x, w, bias, out));
  const int64_t M = x.size(0), K = x.size(1), N = w.size(0);
  if (M == 0 || N == 0) return absl::OkStatus();
  float* op = out.data<float>();
  if (K == 0) {
    LOOM_CUDA_CHECK(
        cudaMemsetAsync(op, 0, static_cast<size_t>(M * N) * sizeof(float), context.stream()));
  } else {
    // Row-major out[M, N] = x[M, K] · w[N, K]ᵀ is column-major outᵀ[N, M] = wᵀ · xᵀ, where the
    // row-major w read column-major is already the K × N matrix wᵀ: op(A) = Aᵀ with A = w.
    const float alpha = 1.0f, beta = 0.0f;
    const void* xp = x.raw_data();
    cudaDataType_t type = CUDA_R_32F;
    if (w.dtype() != DType::kF32) {
      type = w.dtype() == DType::kBF16 ? CUDA_R_16BF : CUDA_R_16F;
      LOOM_ASSIGN_OR_RETURN(void* rounded, context.Scratch(static_cast<size_t>(M * K) * 2));
      LOOM_CUDA_CHECK(internal::LaunchConvertF32(x.data<float>(), M * K, ToStorage(w.dtype()),
                                                 rounded, context.stream()));
      xp = rounded;
    }
    LOOM_CUBLAS_CHECK(cublasGemmEx(context.cublas(), CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(N),
                                   static_cast<int>(M), static_cast<int>(K), &alpha, w.raw_data(),
                                   type, static_cast<int>(K), xp, type, static_cast<int>(K), &beta,
                                   op, CUDA_R_32F, static_cast<int>(N), CUBLAS_COMPUTE_32F,
                                   CUBLAS_GEMM_DEFAULT));
  }
  if (bias != nullptr) {
    LOOM_CUDA_CHECK(internal::LaunchAddBias(op, bias->data<float>(), M, N, context.stream()));
  }
  return absl::OkStatus();
}

absl::Status RmsNorm(DeviceContext& context, const Tensor& x, const Tensor& weight, float eps,
                     Tensor& out) {
  LOOM_RETURN_IF_ERROR(::loom::kernels::internal::CheckRmsNorm(x, weight, eps, out));
  const int64_t t = x.size(0), h = x.size(1);
  LOOM_CUDA_CHECK(internal::LaunchRmsNorm(x.data<float>(), nullptr, weight.data<float>(), eps, t, h,
                                          out.data<float>(), context.stream()));
  return absl::OkStatus();
}

absl::Status FusedAddRmsNorm(DeviceContext& context, Tensor& x, Tensor& residual,
                             const Tensor& weight, float eps) {
  LOOM_RETURN_IF_ERROR(
      ::loom::kernels::internal::CheckFusedAddRmsNorm(x, residual, weight, eps));
  const int64_t t = x.size(0), h = x.size(1);
  LOOM_CUDA_CHECK(internal::LaunchRmsNorm(x.data<float>(), residual.data<float>(),
                                          weight.data<float>(), eps, t, h, nullptr,
                                          context.stream()));
  return absl::OkStatus();
}

absl::Status ApplyRope(DeviceContext& context, Tensor& q, Tensor& k, const Tensor& positions,
                       const Tensor& cos_sin) {
  constexpr const char* kName = "ApplyRope";
  LOOM_RETURN_IF_ERROR(CheckTensor(kName, "cos_sin", cos_sin, DType::kF32, 2, true));
  const int64_t max_positions = cos_sin.size(0), head_dim = cos_sin.size(1);
  if (head_dim % 2 != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("ApplyRope: head_dim must be even, got ", head_dim));
  }
  LOOM_RETURN_IF_ERROR(CheckTensor(kName, "positions", positions, DType::kI32, 1, true));
  const int64_t tokens = positions.size(0);
  LOOM_RETURN_IF_ERROR(CheckHeads(kName, "q", q, tokens, head_dim));
  LOOM_RETURN_IF_ERROR(CheckHeads(kName, "k", k, tokens, head_dim));
  LOOM_CUDA_CHECK(internal::LaunchApplyRope(
      ViewOf(q), ViewOf(k), tokens, head_dim, positions.data<int32_t>(), cos_sin.data<float>(),
      max_positions, context.device_errors(), context.stream()));
  return absl::OkStatus();
}

absl::Status SiluAndMul(DeviceContext& context, const Tensor& gate_up, Tensor& out) {
  LOOM_RETURN_IF_ERROR(::loom::kernels::internal::CheckSiluAndMul(gate_up, out));
  const int64_t t = gate_up.size(0), inter = gate_up.size(1) / 2;
  LOOM_CUDA_CHECK(internal::LaunchSiluAndMul(gate_up.data<float>(), t, inter, out.data<float>(),
                                             context.stream()));
  return absl::OkStatus();
}

absl::Status Embedding(DeviceContext& context, const Tensor& ids, const Tensor& table,
                       int64_t vocab_start, Tensor& out) {
  LOOM_RETURN_IF_ERROR(::loom::kernels::internal::CheckEmbedding(ids, table, vocab_start, out));
  const int64_t t = ids.size(0), vocab = table.size(0), h = table.size(1);
  LOOM_CUDA_CHECK(internal::LaunchEmbedding(ids.data<int32_t>(), t, table.raw_data(),
                                            ToStorage(table.dtype()), vocab, h, vocab_start,
                                            out.data<float>(), context.stream()));
  return absl::OkStatus();
}

absl::Status WriteKvCache(DeviceContext& context, const Tensor& k, const Tensor& v,
                          const Tensor& slot_mapping, Tensor& k_cache, Tensor& v_cache) {
  constexpr const char* kName = "WriteKvCache";
  LOOM_RETURN_IF_ERROR(CheckTensor(kName, "k", k, DType::kF32, 3, false));
  const int64_t tokens = k.size(0), heads = k.size(1), head_dim = k.size(2);
  LOOM_RETURN_IF_ERROR(CheckHeads(kName, "k", k, tokens, head_dim));
  LOOM_RETURN_IF_ERROR(CheckHeads(kName, "v", v, tokens, head_dim));
  LOOM_RETURN_IF_ERROR(CheckShape(kName, "v", v, k.shape()));
  LOOM_RETURN_IF_ERROR(CheckTensor(kName, "slot_mapping", slot_mapping, DType::kI64, 1, true));
  LOOM_RETURN_IF_ERROR(CheckShape(kName, "slot_mapping", slot_mapping, {tokens}));
  LOOM_RETURN_IF_ERROR(CheckStored(kName, "k_cache", k_cache));
  LOOM_RETURN_IF_ERROR(CheckTensor(kName, "k_cache", k_cache, k_cache.dtype(), 4, true));
  LOOM_RETURN_IF_ERROR(CheckTensor(kName, "v_cache", v_cache, k_cache.dtype(), 4, true));
  LOOM_RETURN_IF_ERROR(CheckShape(kName, "v_cache", v_cache, k_cache.shape()));
  if (k_cache.size(2) != heads || k_cache.size(3) != head_dim) {
    return absl::InvalidArgumentError(absl::StrCat("WriteKvCache: caches ", k_cache.DebugString(),
                                                   " do not hold k ", k.DebugString()));
  }
  const int64_t num_slots = k_cache.size(0) * k_cache.size(1);
  LOOM_CUDA_CHECK(internal::LaunchWriteKvCache(
      ViewOf(k), ViewOf(v), tokens, head_dim, slot_mapping.data<int64_t>(), k_cache.raw_data(),
      v_cache.raw_data(), ToStorage(k_cache.dtype()), num_slots, context.device_errors(),
      context.stream()));
  return absl::OkStatus();
}

}  // namespace loom::kernels::cuda
