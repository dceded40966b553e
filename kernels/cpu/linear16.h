// The paths behind Linear, exposed so tools/bench_kernels.cc can time each one at every row
// count and justify the switch-over points Linear uses.
#ifndef LOOM_KERNELS_CPU_LINEAR16_H_
#define LOOM_KERNELS_CPU_LINEAR16_H_

#include <cstdint>

#include "common/dtype.h"
#include "kernels/cpu/isa_kernels.h"

namespace loom::kernels::internal {


// out[M, N] = x[M, K] · w[N, K]ᵀ with w of `dtype` (kF32, kBF16 or kF16); all contiguous, no
// bias, M, N, K > 0. Streams each weight row once, widening in registers (decode), with the
// kernels of ActiveIsa() (kernels/cpu/cpu_isa.h), whatever the row count.
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
