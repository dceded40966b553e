// The NCCL entry points of a build without CUDA: clear errors instead of link failures.
#include "absl/status/status.h"
#include "controller/nccl_id.h"
#include "worker/comm/nccl_communicator.h"

namespace loom {

absl::StatusOr<std::unique_ptr<Communicator>> CreateNcclCommunicator(const NcclOptions&) {
  return absl::FailedPreconditionError(
      "NCCL: this build of Loom has no CUDA support (build it where the CUDA toolkit is "
      "installed)");
}

absl::StatusOr<std::string> NewNcclUniqueId() {
  return absl::FailedPreconditionError("NCCL: this build of Loom has no CUDA support");
}

}  // namespace loom
