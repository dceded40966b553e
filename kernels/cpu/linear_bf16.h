// The two bf16-weight paths behind Linear, exposed so tools/bench_kernels.cc can time each one
// at every row count and justify the switch-over point Linear uses.
#ifndef LOOM_KERNELS_CPU_LINEAR_BF16_H_
#define LOOM_KERNELS_CPU_LINEAR_BF16_H_

#include <cstdint>

namespace loom::kernels::internal {

// Row counts at and below which Linear takes the streaming path.
inline constexpr int64_t kLinearStreamingMaxRows = 16;

// out[M, N] = x[M, K] · w[N, K]ᵀ with w in bf16 bits; all contiguous, no bias, M, N, K > 0.
// Streams each weight row once, widening in registers (decode).
void LinearBf16Streaming(const float* x, int64_t M, const uint16_t* w, int64_t N, int64_t K,
                         float* out);
// Widens blocks of weight rows into scratch and calls sgemm on each (prefill).
void LinearBf16Blocked(const float* x, int64_t M, const uint16_t* w, int64_t N, int64_t K,
                       float* out);

}  // namespace loom::kernels::internal

#endif  // LOOM_KERNELS_CPU_LINEAR_BF16_H_
