// The argument checks of the kernels.h entry points, once for every device: the CPU kernels and
// the CUDA ones call the same function before touching memory, so a shape or dtype error reads
// the same whichever device runs. Each returns InvalidArgument naming the kernel and the
// argument, so a caller's bad metadata surfaces as a message instead of a stray read.
// (Checks that differ by device — cache types, device-side indices — stay with the device.)
#ifndef LOOM_KERNELS_CHECKS_H_
#define LOOM_KERNELS_CHECKS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/tensor.h"
#include "kernels/kernels.h"

namespace loom::kernels::internal {

inline absl::Status CheckTensor(const char* kernel, const char* name, const Tensor& t, DType dtype,
                                int64_t rank, bool contiguous) {
  if (!t.defined()) {
    return absl::InvalidArgumentError(absl::StrCat(kernel, ": ", name, " is undefined"));
  }
  if (t.dtype() != dtype) {
    return absl::InvalidArgumentError(
        absl::StrCat(kernel, ": ", name, " must be ", DTypeName(dtype), ", got ", t.DebugString()));
  }
  if (t.dim() != rank) {
    return absl::InvalidArgumentError(
        absl::StrCat(kernel, ": ", name, " must have rank ", rank, ", got ", t.DebugString()));
  }
  if (contiguous && !t.is_contiguous()) {
    return absl::InvalidArgumentError(
        absl::StrCat(kernel, ": ", name, " must be contiguous, got ", t.DebugString()));
  }
  return absl::OkStatus();
}

inline absl::Status CheckShape(const char* kernel, const char* name, const Tensor& t,
                               const std::vector<int64_t>& shape) {
  if (t.shape() != shape) {
    return absl::InvalidArgumentError(absl::StrCat(kernel, ": ", name, " must be ",
                                                   ShapeString(shape), ", got ", t.DebugString()));
  }
  return absl::OkStatus();
}

// Linear: x f32 [M, K], w f32/bf16/f16 [N, K], optional bias f32 [N], out f32 [M, N], every
// dimension within int (what BLAS libraries take).
absl::Status CheckLinear(const Tensor& x, const Tensor& w, const Tensor* bias, const Tensor& out);
// RmsNorm: x and out f32 [T, H] alike, weight f32 [H], eps finite and >= 0.
absl::Status CheckRmsNorm(const Tensor& x, const Tensor& weight, float eps, const Tensor& out);
// FusedAddRmsNorm: x and residual f32 [T, H] alike, weight f32 [H], eps finite and >= 0.
absl::Status CheckFusedAddRmsNorm(const Tensor& x, const Tensor& residual, const Tensor& weight,
                                  float eps);
// SiluAndMul: gate_up f32 [T, 2I], out f32 [T, I].
absl::Status CheckSiluAndMul(const Tensor& gate_up, const Tensor& out);
// Embedding: ids i32 [T], table f32/bf16/f16 [V, H], out f32 [T, H], vocab_start >= 0.
absl::Status CheckEmbedding(const Tensor& ids, const Tensor& table, int64_t vocab_start,
                            const Tensor& out);
// PagedAttention's batch: B+1 query starts from 0 to `tokens`, non-decreasing, each sequence's
// context at least its query rows, block tables covering the contexts with blocks in
// [0, num_blocks).
absl::Status CheckAttentionBatch(const AttentionBatch& batch, int64_t tokens, int64_t num_blocks,
                                 int64_t block_size);

}  // namespace loom::kernels::internal

#endif  // LOOM_KERNELS_CHECKS_H_
