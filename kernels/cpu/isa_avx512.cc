// The AVX-512 F/BW/VL kernels (isa_avx512-inl.h), compiled with -mavx512f -mavx512bw
// -mavx512vl; run only where the CPU has all three (cpu_isa.cc checks before choosing them).
#include "kernels/cpu/isa_avx512-inl.h"

namespace loom::kernels::internal {

constinit const IsaKernels kAvx512Kernels = {
    .linear_f32 = {LinearRows<InOrder<F32Weights>>, kLinearStreamingMaxRows, false},
    .linear_bf16 = {LinearRows<EvenOdd>, kLinearStreamingMaxRows, true},
    .linear_f16 = {LinearRows<InOrder<F16Weights>>, kLinearStreamingMaxRows, false},
    .pack = PackEvenOdd,
    .packed_floats = PackedFloats,
    .row_group = 4,
    .widen_bf16 = Widen<Bf16Weights>,
    .widen_f16 = Widen<F16Weights>,
    .attention_scores = AttentionScores,
    .attention_values = AttentionValues,
};

}  // namespace loom::kernels::internal
