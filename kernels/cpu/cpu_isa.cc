// Detection and choice of the CPU kernel variant. Compiled without AVX flags (cpu_isa.h).
#include "kernels/cpu/cpu_isa.h"

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
  }
  return "unknown";
}

std::optional<CpuIsa> ParseCpuIsa(std::string_view name) {
  for (CpuIsa isa : {CpuIsa::kAvx2, CpuIsa::kAvx512, CpuIsa::kAvx512Bf16}) {
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
  }
  return false;
}

std::optional<CpuIsa> DetectedIsa() {
  for (CpuIsa isa : {CpuIsa::kAvx512Bf16, CpuIsa::kAvx512, CpuIsa::kAvx2}) {
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
        kEnvVar, "=", requested, ": not a CPU kernel variant (avx2, avx512 or avx512bf16)"));
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
