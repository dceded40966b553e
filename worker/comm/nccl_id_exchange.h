// How the ranks of a GPU group agree on one NCCL unique id: rank 0 makes it and publishes it in
// the controller's store, where the Gloo rendezvous meets too; the other ranks wait for it. Rank
// 0 makes it (not the controller) because the id names a bootstrap socket of the process that
// made it — rank 0 lives exactly as long as the group — and the controller carries no NCCL.
#ifndef LOOM_WORKER_COMM_NCCL_ID_EXCHANGE_H_
#define LOOM_WORKER_COMM_NCCL_ID_EXCHANGE_H_

#include <chrono>
#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "gloo/rendezvous/store.h"

namespace loom {

// Rank 0 runs `make_id` and stores its bytes under `key`; every rank returns those bytes. A
// rank other than 0 waits up to `timeout` (DeadlineExceeded naming the key). A failing
// `make_id` fails rank 0 at once; the others then time out, as with any missing peer.
absl::StatusOr<std::string> ShareNcclId(gloo::rendezvous::Store& store, const std::string& key,
                                        int rank,
                                        const std::function<absl::StatusOr<std::string>()>& make_id,
                                        std::chrono::milliseconds timeout);

}  // namespace loom

#endif  // LOOM_WORKER_COMM_NCCL_ID_EXCHANGE_H_
