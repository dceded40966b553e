// Host side of the CUDA sampler: the CPU's checks, the per-row parameters up, tokens down.
#include <cstdint>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "kernels/checks.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/launch.h"

namespace loom::kernels::cuda {

absl::StatusOr<std::vector<int32_t>> Sample(DeviceContext& context, const Tensor& logits,
                                            const std::vector<SamplingParams>& params,
                                            const std::vector<uint64_t>& step) {
  LOOM_RETURN_IF_ERROR(
      ::loom::kernels::internal::CheckTensor("Sample", "logits", logits, DType::kF32, 2, true));
  const int64_t batch = logits.size(0), vocab = logits.size(1);
  if (static_cast<int64_t>(params.size()) != batch || static_cast<int64_t>(step.size()) != batch) {
    return absl::InvalidArgumentError(absl::StrCat("Sample: ", batch, " rows of logits but ",
                                                   params.size(), " params and ", step.size(),
                                                   " steps"));
  }
  if (batch == 0) return std::vector<int32_t>();
  if (vocab == 0) return absl::InvalidArgumentError("Sample: empty vocabulary");
  // Weights are summed as 24.40 fixed point (kernels/cuda/sampling.cu).
  if (vocab > (int64_t{1} << 23)) {
    return absl::InvalidArgumentError(
        absl::StrCat("Sample: the CUDA sampler takes vocabularies up to 2^23, got ", vocab));
  }
  std::vector<internal::SampleRowParams> rows(static_cast<size_t>(batch));
  for (int64_t b = 0; b < batch; ++b) {
    LOOM_RETURN_IF_ERROR(ValidateSamplingParams(params[b]));
    rows[b] = internal::SampleRowParams{params[b].temperature, params[b].top_k, params[b].top_p, 0,
                                        params[b].seed,        step[b]};
  }
  // Scratch: the parameters, then tokens and codes side by side (one copy back).
  const size_t params_bytes = rows.size() * sizeof(internal::SampleRowParams);
  const size_t out_bytes = 2 * rows.size() * sizeof(int32_t);
  LOOM_ASSIGN_OR_RETURN(void* scratch, context.Scratch(params_bytes + out_bytes));
  auto* device_params = static_cast<internal::SampleRowParams*>(scratch);
  auto* device_tokens = reinterpret_cast<int32_t*>(static_cast<char*>(scratch) + params_bytes);
  int32_t* device_codes = device_tokens + batch;
  LOOM_RETURN_IF_ERROR(context.Upload(rows.data(), params_bytes, device_params));
  LOOM_CUDA_CHECK(internal::LaunchSample(logits.data<float>(), batch, vocab, device_params,
                                         device_tokens, device_codes, context.stream()));
  std::vector<int32_t> out(static_cast<size_t>(2 * batch));
  LOOM_CUDA_CHECK(cudaMemcpyAsync(out.data(), device_tokens, out_bytes, cudaMemcpyDeviceToHost,
                                  context.stream()));
  LOOM_CUDA_CHECK(cudaStreamSynchronize(context.stream()));
  for (int64_t b = 0; b < batch; ++b) {
    switch (out[batch + b]) {
      case internal::kSampleOk:
        break;
      case internal::kSampleNaN:
        return absl::InvalidArgumentError(absl::StrCat("Sample: a logit of row ", b, " is NaN"));
      case internal::kSampleAllNegInf:
        return absl::InvalidArgumentError(
            absl::StrCat("Sample: every logit is -inf (row ", b, ")"));
      default:
        return absl::InternalError(
            absl::StrCat("Sample: unknown outcome ", out[batch + b], " for row ", b));
    }
  }
  out.resize(static_cast<size_t>(batch));
  return out;
}

}  // namespace loom::kernels::cuda
