// Built into loom_nccl (worker/CMakeLists.txt) only when CUDA is found.
#include "controller/nccl_id.h"

#include "kernels/cuda/nccl_check.h"

namespace loom {

absl::StatusOr<std::string> NewNcclUniqueId() {
  ncclUniqueId id;
  LOOM_NCCL_RETURN_IF_ERROR(ncclGetUniqueId(&id));
  static_assert(sizeof(id.internal) == NCCL_UNIQUE_ID_BYTES);
  return std::string(id.internal, sizeof(id.internal));
}

}  // namespace loom
