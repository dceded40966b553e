#include "controller/controller_service.h"

#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "proto/cluster_channel.h"

namespace loom {
namespace {

std::string NewSessionId() {
  std::random_device random;
  return absl::StrFormat("%08x%08x", random(), random());
}

// A store value may be at most this large (Gloo publishes a few hundred bytes per rank).
constexpr size_t kMaxValueBytes = 1 << 20;
constexpr int64_t kMaxWaitMs = 10 * 60 * 1000;

}  // namespace

ControllerService::ControllerService(int world_size, std::string cluster_secret)
    : world_size_(world_size),
      session_id_(NewSessionId()),
      cluster_secret_(std::move(cluster_secret)),
      workers_(world_size) {}

std::vector<std::optional<WorkerRegistration>> ControllerService::Registrations() const {
  absl::MutexLock lock(&mu_);
  return workers_;
}

void ControllerService::Shutdown() {
  absl::MutexLock lock(&mu_);
  shut_down_ = true;
  store_changed_.SignalAll();
}

grpc::Status ControllerService::Register(grpc::ServerContext* context,
                                         const loom::v1::RegisterRequest* request,
                                         loom::v1::RegisterResponse* response) {
  if (grpc::Status s = CheckClusterSecret(*context, cluster_secret_); !s.ok()) return s;
  const int rank = request->rank();
  if (request->world_size() != world_size_) {
    return grpc::Status(
        grpc::StatusCode::INVALID_ARGUMENT,
        absl::StrCat("rank ", rank, " registered with world size ", request->world_size(),
                     "; this controller runs ", world_size_, " ranks"));
  }
  if (rank < 0 || rank >= world_size_) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat("rank ", rank, " outside [0, ", world_size_, ")"));
  }
  absl::MutexLock lock(&mu_);
  if (shut_down_) {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "the controller is shutting down");
  }
  if (workers_[rank].has_value()) {
    return grpc::Status(grpc::StatusCode::ALREADY_EXISTS,
                        absl::StrCat("rank ", rank, " is already registered (pid ",
                                     workers_[rank]->pid, " at ", workers_[rank]->address, ")"));
  }
  WorkerRegistration& w = workers_[rank].emplace();
  w.rank = rank;
  w.address = request->address();
  w.pid = request->pid();
  w.device = request->device();
  w.hostname = request->hostname();
  w.error = request->error();
  w.registered_at = w.last_heartbeat = absl::Now();
  response->set_session_id(session_id_);
  return grpc::Status::OK;
}

grpc::Status ControllerService::Heartbeat(grpc::ServerContext* context,
                                          const loom::v1::HeartbeatRequest* request,
                                          loom::v1::HeartbeatResponse*) {
  if (grpc::Status s = CheckClusterSecret(*context, cluster_secret_); !s.ok()) return s;
  if (request->session_id() != session_id_) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        absl::StrCat("session ", request->session_id(),
                                     " is not this controller's (", session_id_, ")"));
  }
  absl::MutexLock lock(&mu_);
  const int rank = request->rank();
  if (rank < 0 || rank >= world_size_ || !workers_[rank].has_value()) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        absl::StrCat("rank ", rank, " is not registered"));
  }
  workers_[rank]->last_heartbeat = absl::Now();
  return grpc::Status::OK;
}

grpc::Status ControllerService::StoreSet(grpc::ServerContext* context,
                                         const loom::v1::StoreSetRequest* request,
                                         loom::v1::StoreSetResponse*) {
  if (grpc::Status s = CheckClusterSecret(*context, cluster_secret_); !s.ok()) return s;
  if (request->key().empty() || request->value().size() > kMaxValueBytes) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "store keys must be non-empty and values at most 1 MiB");
  }
  absl::MutexLock lock(&mu_);
  store_[request->key()] = request->value();
  store_changed_.SignalAll();
  return grpc::Status::OK;
}

grpc::Status ControllerService::StoreGet(grpc::ServerContext* context,
                                         const loom::v1::StoreGetRequest* request,
                                         loom::v1::StoreGetResponse* response) {
  if (grpc::Status s = CheckClusterSecret(*context, cluster_secret_); !s.ok()) return s;
  const int64_t wait_ms = std::min(std::max<int64_t>(request->timeout_ms(), 0), kMaxWaitMs);
  const absl::Time deadline = absl::Now() + absl::Milliseconds(wait_ms);
  absl::MutexLock lock(&mu_);
  while (true) {
    std::string missing;
    for (const std::string& key : request->keys()) {
      if (store_.count(key) == 0) {
        missing = key;
        break;
      }
    }
    if (missing.empty()) break;
    if (shut_down_) {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "the controller is shutting down");
    }
    if (context->IsCancelled()) {
      return grpc::Status(grpc::StatusCode::CANCELLED, "the caller went away");
    }
    if (absl::Now() >= deadline) {
      return grpc::Status(
          grpc::StatusCode::DEADLINE_EXCEEDED,
          absl::StrCat("store key ", missing, " did not appear within ", wait_ms, " ms"));
    }
    // Wakes on every change; the slice bounds how late a cancelled caller is noticed.
    store_changed_.WaitWithDeadline(&mu_,
                                    std::min(deadline, absl::Now() + absl::Milliseconds(200)));
  }
  for (const std::string& key : request->keys()) response->add_values(store_[key]);
  return grpc::Status::OK;
}

}  // namespace loom
