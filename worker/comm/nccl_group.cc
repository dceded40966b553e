#include "worker/comm/nccl_group.h"

#include "common/status.h"
#include "controller/nccl_id.h"
#include "worker/comm/nccl_communicator.h"
#include "worker/comm/nccl_id_exchange.h"

namespace loom {

absl::StatusOr<std::unique_ptr<Communicator>> JoinNcclGroup(gloo::rendezvous::Store& store,
                                                            const NcclGroupOptions& options) {
  NcclOptions nccl;
  nccl.rank = options.rank;
  nccl.world_size = options.world_size;
  nccl.device = options.device;
  nccl.timeout = options.timeout;
  LOOM_ASSIGN_OR_RETURN(nccl.unique_id, ShareNcclId(store, options.prefix + "/nccl_id",
                                                    options.rank, NewNcclUniqueId,
                                                    options.timeout));
  return CreateNcclCommunicator(nccl);
}

}  // namespace loom
