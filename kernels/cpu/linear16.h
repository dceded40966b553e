// The two 16-bit-weight paths behind Linear (bf16 or f16 weights), exposed so
// tools/bench_kernels.cc can time each one at every row count and justify the switch-over point
// Linear uses.
#ifndef LOOM_KERNELS_CPU_LINEAR16_H_
#define LOOM_KERNELS_CPU_LINEAR16_H_

#include <cstdint>

#include "common/dtype.h"

namespace loom::kernels::internal {

// Row counts at and below which Linear takes the streaming path.
inline constexpr int64_t kLinearStreamingMaxRows = 16;

// out[M, N] = x[M, K] · w[N, K]ᵀ with w the bits of `dtype` (kBF16 or kF16); all contiguous, no
// bias, M, N, K > 0. Streams each weight row once, widening in registers (decode).
void Linear16Streaming(DType dtype, const float* x, int64_t M, const uint16_t* w, int64_t N,
                       int64_t K, float* out);
// Widens blocks of weight rows into scratch and calls sgemm on each (prefill).
void Linear16Blocked(DType dtype, const float* x, int64_t M, const uint16_t* w, int64_t N,
                     int64_t K, float* out);

}  // namespace loom::kernels::internal

#endif  // LOOM_KERNELS_CPU_LINEAR16_H_
