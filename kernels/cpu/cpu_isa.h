// Which instruction-set variant of the CPU kernels runs. One binary carries every variant the
// compiler could build (kernels/cpu/isa_*.cc, each compiled with its own flags) and picks one at
// run time from what the CPU offers, so the same build serves an AVX2-only AMD Zen 3 and an
// AVX-512 Xeon without ever executing an instruction the CPU lacks.
//
// The choice is made once, on first use: the fastest variant the CPU supports, or the one the
// environment variable LOOM_CPU_ISA names (avx2, avx512, avx512bf16, amx) to compare variants on
// one machine. A value that is unknown or asks for more than the CPU has is refused when a host
// context is created (CheckHostCpu) and never executed.
//
// cpu_isa.cc and host_context.cc are compiled without AVX flags, so a CPU below the AVX2 baseline
// gets CheckHostCpu's error instead of SIGILL.
#ifndef LOOM_KERNELS_CPU_CPU_ISA_H_
#define LOOM_KERNELS_CPU_CPU_ISA_H_

#include <optional>
#include <string_view>

#include "absl/status/status.h"

namespace loom::kernels {

// Ordered: each variant needs everything the ones before it need.
enum class CpuIsa {
  kAvx2,        // AVX2 + FMA + F16C: the baseline, the least Loom runs on
  kAvx512,      // + AVX-512 F, BW, VL
  kAvx512Bf16,  // + AVX-512 BF16: vdpbf16ps for bf16 weights. Never the default: see DefaultIsa
  kAmx,         // + AMX-TILE and AMX-BF16, and the OS's leave to use the tiles: bf16 weights on
                // tiles (isa_amx.cc)
};

// "avx2", "avx512", "avx512bf16", "amx": what LOOM_CPU_ISA takes and tools print.
const char* CpuIsaName(CpuIsa isa);
std::optional<CpuIsa> ParseCpuIsa(std::string_view name);

// The best variant this CPU supports, or nullopt below the AVX2 baseline. Also below it when
// this build has no code for a variant (a compiler without the AVX-512 flags).
std::optional<CpuIsa> DetectedIsa();
bool CpuSupports(CpuIsa isa);

// The fastest variant this CPU supports: DetectedIsa(), but kAvx512 where that is kAvx512Bf16.
// Keeping the activations' f32 precision costs kAvx512Bf16 two vdpbf16ps per 32 weights and
// activation row, and those ran slower than kAvx512's FMAs (isa_avx512bf16.cc has the numbers);
// kAmx pays three tile products per tile of weights and is the fastest at every row count
// (docs/cpu_performance.md). kAvx2 below the baseline.
CpuIsa DefaultIsa();

// The variant the kernels run: LOOM_CPU_ISA when set and supported, otherwise DefaultIsa().
// Below the baseline it answers kAvx2, but CheckHostCpu has refused every host context.
CpuIsa ActiveIsa();

// OK when the kernels can run here: the CPU has the AVX2 baseline and LOOM_CPU_ISA, if set,
// names a variant it supports. FailedPrecondition naming what is missing otherwise, and
// InvalidArgument for a LOOM_CPU_ISA that names no variant.
absl::Status CheckHostCpu();

// Tests only: runs the kernels as `isa` from now on (`isa` must be supported; returns false and
// changes nothing otherwise). Not for use while kernels run on other threads.
bool SetActiveIsaForTesting(CpuIsa isa);

}  // namespace loom::kernels

#endif  // LOOM_KERNELS_CPU_CPU_ISA_H_
