// Detection and choice of the CPU kernel variant. Compiled without AVX flags (cpu_isa.h).
#include "kernels/cpu/cpu_isa.h"

#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "kernels/cpu/isa_kernels.h"

namespace loom::kernels {
namespace {

constexpr char kEnvVar[] = "LOOM_CPU_ISA";

bool HasBaseline() {
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
         __builtin_cpu_supports("f16c");
}

// __builtin_cpu_supports also asks the OS whether it saves the registers (XCR0), so a kernel
// that disabled AVX-512 state reads as a CPU without it.
bool HasAvx512() {
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl");
}

// AMX-TILE and AMX-BF16 (CPUID leaf 7, EDX bits 24 and 22), and the kernel's leave for this
// process to use the tile data registers: Linux keeps them off until asked (arch_prctl
// ARCH_REQ_XCOMP_PERM, once per process; a kernel before 5.16 refuses). Asked once, on first use.
bool HasAmx() {
  static const bool granted = [] {
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    if (__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx) == 0) return false;
    if (((edx >> 24) & 1) == 0 || ((edx >> 22) & 1) == 0) return false;
    constexpr long kArchReqXcompPerm = 0x1023;
    constexpr long kXfeatureXtileData = 18;
    return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtileData) == 0;
  }();
  return granted;
}

const internal::IsaKernels* TableOf(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::kAvx2:
      return &internal::kAvx2Kernels;
    case CpuIsa::kAvx512:
#ifdef LOOM_HAVE_AVX512_KERNELS
      return &internal::kAvx512Kernels;
#else
      return nullptr;
#endif
    case CpuIsa::kAvx512Bf16:
#ifdef LOOM_HAVE_AVX512BF16_KERNELS
      return &internal::kAvx512Bf16Kernels;
#else
      return nullptr;
#endif
    case CpuIsa::kAmx:
#ifdef LOOM_HAVE_AMX_KERNELS
      return &internal::kAmxKernels;
#else
      return nullptr;
#endif
  }
  return nullptr;
}

const char* RequestedName() { return std::getenv(kEnvVar); }

// The variant chosen at first use: LOOM_CPU_ISA when it names a supported one, else the default.
CpuIsa InitialIsa() {
  const char* requested = RequestedName();
  if (requested != nullptr && *requested != '\0') {
    const std::optional<CpuIsa> isa = ParseCpuIsa(requested);
    if (isa.has_value() && CpuSupports(*isa)) return *isa;
  }
  return DefaultIsa();
}

std::atomic<CpuIsa>& Active() {
  static std::atomic<CpuIsa> active(InitialIsa());
  return active;
}

std::atomic<const internal::IsaKernels*>& ActiveTable() {
  static std::atomic<const internal::IsaKernels*> table(TableOf(Active().load()));
  return table;
}

}  // namespace

const char* CpuIsaName(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::kAvx2:
      return "avx2";
    case CpuIsa::kAvx512:
      return "avx512";
    case CpuIsa::kAvx512Bf16:
      return "avx512bf16";
    case CpuIsa::kAmx:
      return "amx";
  }
  return "unknown";
}

std::optional<CpuIsa> ParseCpuIsa(std::string_view name) {
  for (CpuIsa isa : {CpuIsa::kAvx2, CpuIsa::kAvx512, CpuIsa::kAvx512Bf16, CpuIsa::kAmx}) {
    if (name == CpuIsaName(isa)) return isa;
  }
  return std::nullopt;
}

bool CpuSupports(CpuIsa isa) {
  if (!HasBaseline() || TableOf(isa) == nullptr) return false;
  switch (isa) {
    case CpuIsa::kAvx2:
      return true;
    case CpuIsa::kAvx512:
      return HasAvx512();
    case CpuIsa::kAvx512Bf16:
      return HasAvx512() && __builtin_cpu_supports("avx512bf16");
    case CpuIsa::kAmx:
      return HasAvx512() && __builtin_cpu_supports("avx512bf16") && HasAmx();
  }
  return false;
}

std::optional<CpuIsa> DetectedIsa() {
  for (CpuIsa isa : {CpuIsa::kAmx, CpuIsa::kAvx512Bf16, CpuIsa::kAvx512, CpuIsa::kAvx2}) {
    if (CpuSupports(isa)) return isa;
  }
  return std::nullopt;
}

CpuIsa DefaultIsa() {
  const CpuIsa best = DetectedIsa().value_or(CpuIsa::kAvx2);
  return best == CpuIsa::kAvx512Bf16 ? CpuIsa::kAvx512 : best;
}

CpuIsa ActiveIsa() { return Active().load(std::memory_order_relaxed); }

absl::Status CheckHostCpu() {
  if (!HasBaseline()) {
    return absl::FailedPreconditionError(
        "this CPU lacks AVX2, FMA or F16C, which Loom's CPU kernels need at the least (x86-64 "
        "from Intel Haswell or AMD Zen on)");
  }
  const char* requested = RequestedName();
  if (requested == nullptr || *requested == '\0') return absl::OkStatus();
  const std::optional<CpuIsa> isa = ParseCpuIsa(requested);
  if (!isa.has_value()) {
    return absl::InvalidArgumentError(absl::StrCat(
        kEnvVar, "=", requested, ": not a CPU kernel variant (avx2, avx512, avx512bf16 or amx)"));
  }
  if (!CpuSupports(*isa)) {
    return absl::FailedPreconditionError(
        absl::StrCat(kEnvVar, "=", requested, ": this CPU (or this build) has no ", requested,
                     " kernels; the best it has is ", CpuIsaName(*DetectedIsa())));
  }
  return absl::OkStatus();
}

bool SetActiveIsaForTesting(CpuIsa isa) {
  if (!CpuSupports(isa)) return false;
  Active().store(isa);
  ActiveTable().store(TableOf(isa));
  return true;
}

namespace internal {

const IsaKernels& ActiveKernels() { return *ActiveTable().load(std::memory_order_relaxed); }

}  // namespace internal
}  // namespace loom::kernels
