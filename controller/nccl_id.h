// The NCCL unique id: the controller makes one per tensor-parallel group and sends it to every
// rank in InitRequest.nccl_unique_id (DESIGN §3.9); the ranks pass it to NcclCommunicator::Create.
// Only in builds with CUDA and NCCL (LOOM_WITH_NCCL, target loom_nccl).
#ifndef LOOM_CONTROLLER_NCCL_ID_H_
#define LOOM_CONTROLLER_NCCL_ID_H_

#include <string>

#include "absl/status/statusor.h"

namespace loom {

// A fresh id from ncclGetUniqueId: NCCL_UNIQUE_ID_BYTES (128) opaque bytes. Needs no GPU. The
// id names a bootstrap socket this process opens, so the process must stay up while the ranks
// build their communicator.
absl::StatusOr<std::string> NewNcclUniqueId();

}  // namespace loom

#endif  // LOOM_CONTROLLER_NCCL_ID_H_
