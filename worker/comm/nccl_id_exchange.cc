#include "worker/comm/nccl_id_exchange.h"

#include <exception>
#include <vector>

#include "absl/strings/str_cat.h"

namespace loom {

absl::StatusOr<std::string> ShareNcclId(gloo::rendezvous::Store& store, const std::string& key,
                                        int rank,
                                        const std::function<absl::StatusOr<std::string>()>& make_id,
                                        std::chrono::milliseconds timeout) {
  try {
    if (rank == 0) {
      absl::StatusOr<std::string> id = make_id();
      if (!id.ok()) return id.status();
      store.set(key, std::vector<char>(id->begin(), id->end()));
      return *id;
    }
    store.wait({key}, timeout);
    const std::vector<char> bytes = store.get(key);
    return std::string(bytes.begin(), bytes.end());
  } catch (const std::exception& e) {
    return absl::DeadlineExceededError(absl::StrCat("rank ", rank, ": no NCCL unique id under \"",
                                                    key, "\" within ", timeout.count(),
                                                    " ms: ", e.what()));
  }
}

}  // namespace loom
