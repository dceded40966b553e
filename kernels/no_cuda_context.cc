// CreateExecutionContext for a build without CUDA: the host only.
#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "kernels/cpu/cpu_isa.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/execution_context.h"

namespace loom::kernels {

absl::StatusOr<std::unique_ptr<ExecutionContext>> CreateExecutionContext(const Device& device) {
  if (device.is_cpu()) {
    LOOM_RETURN_IF_ERROR(CheckHostCpu());
    return cpu::NewHostContext();
  }
  return absl::FailedPreconditionError(
      absl::StrCat("device ", device.ToString(),
                   ": this build of Loom has no CUDA support (build it where "
                   "the CUDA toolkit is installed)"));
}

int VisibleCudaDevices() { return 0; }

}  // namespace loom::kernels
