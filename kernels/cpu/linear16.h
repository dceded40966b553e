// The paths behind Linear, exposed so tools/bench_kernels.cc can time each one at every row
// count and justify the switch-over points Linear uses.
#ifndef LOOM_KERNELS_CPU_LINEAR16_H_
#define LOOM_KERNELS_CPU_LINEAR16_H_

#include <cstdint>

#include "common/dtype.h"
#include "kernels/cpu/isa_kernels.h"

namespace loom::kernels::internal {

// Row counts at and below which Linear takes the streaming path for f32 weights; for 16-bit
// weights it is the table's linear_bf16_max_rows, or kLinearStreamingMaxRows (isa_kernels.h).
// f32 weights reach sgemm without a widening copy, so it catches up sooner: on one core of an
// AVX-512 Xeon, Qwen3-0.6B's projections stream at 2.2x sgemm's speed with 1 row, 1.25x with 8
// and 0.75x with 16 (AVX2: 1.8x, 1.2x, 0.75x).
inline constexpr int64_t kLinearF32StreamingMaxRows = 8;

// out[M, N] = x[M, K] · w[N, K]ᵀ with w of `dtype` (kF32, kBF16 or kF16); all contiguous, no
// bias, M, N, K > 0. Streams each weight row once, widening in registers (decode), with the
// kernels of ActiveIsa() (kernels/cpu/cpu_isa.h).
void LinearStreaming(DType dtype, const float* x, int64_t M, const void* w, int64_t N, int64_t K,
                     float* out);
// The same for 16-bit weights: kF16, or else kBF16.
void Linear16Streaming(DType dtype, const float* x, int64_t M, const uint16_t* w, int64_t N,
                       int64_t K, float* out);
// Widens blocks of weight rows into scratch and calls sgemm on each (prefill).
void Linear16Blocked(DType dtype, const float* x, int64_t M, const uint16_t* w, int64_t N,
                     int64_t K, float* out);

}  // namespace loom::kernels::internal

#endif  // LOOM_KERNELS_CPU_LINEAR16_H_
