// Joining an NCCL group through the controller's store: the group's rank 0 makes the unique id
// and publishes it under `prefix`/nccl_id (nccl_id_exchange.h), every member builds its
// communicator on its GPU. The ranks' step and weight groups and a trainer's weight update group
// all join this way; in a build without CUDA it is FailedPrecondition (nccl_unavailable.cc).
#ifndef LOOM_WORKER_COMM_NCCL_GROUP_H_
#define LOOM_WORKER_COMM_NCCL_GROUP_H_

#include <chrono>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "gloo/rendezvous/store.h"
#include "worker/comm/communicator.h"

namespace loom {

struct NcclGroupOptions {
  std::string prefix;  // the store keys' prefix, unique to this group (and join)
  int rank = 0;
  int world_size = 1;
  int device = 0;  // the CUDA device index this member uses
  // Bounds the wait for the id, building the communicator and each collective.
  std::chrono::milliseconds timeout = std::chrono::seconds(30);
};

// The raw NCCL communicator: its collectives take tensors on `device`, queued on NCCL's own
// order. Wrap it (device_ordered_communicator.h, host_staged_communicator.h) for the caller's.
absl::StatusOr<std::unique_ptr<Communicator>> JoinNcclGroup(gloo::rendezvous::Store& store,
                                                            const NcclGroupOptions& options);

}  // namespace loom

#endif  // LOOM_WORKER_COMM_NCCL_GROUP_H_
