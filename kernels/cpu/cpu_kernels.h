// The host implementation of kernels.h, the reference every other device is tested against.
// Same names and semantics as the entry points, without the context: call them through
// kernels.h (HostContext()), which checks devices first.
#ifndef LOOM_KERNELS_CPU_CPU_KERNELS_H_
#define LOOM_KERNELS_CPU_CPU_KERNELS_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/sampling_params.h"
#include "common/tensor.h"
#include "kernels/execution_context.h"
#include "kernels/kernels.h"

namespace loom::kernels::cpu {

// A host context of its own (HostContext() is the process's shared one). Both end the process
// with CheckHostCpu's message (kernels/cpu/cpu_isa.h) when the CPU cannot run the kernels:
// callers that can report an error check first, as CreateExecutionContext does.
std::unique_ptr<ExecutionContext> NewHostContext();

absl::Status Linear(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& out);
absl::Status RmsNorm(const Tensor& x, const Tensor& weight, float eps, Tensor& out);
absl::Status FusedAddRmsNorm(Tensor& x, Tensor& residual, const Tensor& weight, float eps);
absl::Status ApplyRope(Tensor& q, Tensor& k, const Tensor& positions, const Tensor& cos_sin);
absl::Status SiluAndMul(const Tensor& gate_up, Tensor& out);
absl::Status Embedding(const Tensor& ids, const Tensor& table, int64_t vocab_start, Tensor& out);
absl::Status WriteKvCache(const Tensor& k, const Tensor& v, const Tensor& slot_mapping,
                          Tensor& k_cache, Tensor& v_cache);
absl::Status PagedAttention(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache,
                            const AttentionBatch& batch, float scale, int64_t window,
                            Tensor& out);
absl::Status ApplyPenalties(Tensor& logits, const std::vector<PenaltyRow>& rows);
absl::Status FillHashUniform(const HashFill& fill, Tensor& out);
absl::StatusOr<std::vector<int32_t>> Sample(const Tensor& logits,
                                            const std::vector<SamplingParams>& params,
                                            const std::vector<uint64_t>& step);

}  // namespace loom::kernels::cpu

#endif  // LOOM_KERNELS_CPU_CPU_KERNELS_H_
