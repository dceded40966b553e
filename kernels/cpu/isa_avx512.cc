// The AVX-512 F/BW/VL kernels (isa_avx512-inl.h), compiled with -mavx512f -mavx512bw
// -mavx512vl; run only where the CPU has all three (cpu_isa.cc checks before choosing them).
#include "kernels/cpu/isa_avx512-inl.h"

namespace loom::kernels::internal {

constinit const IsaKernels kAvx512Kernels = {
    .linear_f32 = LinearRows<InOrder<F32Weights>>,
    .linear_bf16 = LinearRows<EvenOdd>,
    .linear_f16 = LinearRows<InOrder<F16Weights>>,
    .pack_bf16 = PackEvenOdd,
    .packed_floats = PackedFloats,
    .linear_bf16_max_rows = kLinearStreamingMaxRows,
    .row_group = 4,
    .widen_bf16 = Widen<Bf16Weights>,
    .widen_f16 = Widen<F16Weights>,
    .attention_scores = AttentionScores,
    .attention_values = AttentionValues,
};

}  // namespace loom::kernels::internal
