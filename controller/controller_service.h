// The Controller service the workers call: registration, heartbeats, and the key-value store
// their Gloo ranks meet in (DESIGN.md §3.9). It only records what workers tell it; the
// Supervisor decides what a missing or failed rank means.
//
// Thread-safe. StoreGet blocks its server thread until every key exists, its timeout passes, the
// caller goes away, or Shutdown() is called.
#ifndef LOOM_CONTROLLER_CONTROLLER_SERVICE_H_
#define LOOM_CONTROLLER_CONTROLLER_SERVICE_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "loom/v1/worker.grpc.pb.h"

namespace loom {

// What one rank said when it registered.
struct WorkerRegistration {
  int rank = 0;
  std::string address;  // its Worker service: "unix:/path" or "host:port"
  int64_t pid = 0;
  std::string device;
  std::string hostname;
  std::string error;  // non-empty: the worker cannot serve and is exiting
  absl::Time registered_at;
  absl::Time last_heartbeat;
};

class ControllerService final : public loom::v1::Controller::Service {
 public:
  // With a `cluster_secret`, every call must carry it (proto/cluster_channel.h): a process
  // without it can neither register as a rank nor read or write the rendezvous store.
  explicit ControllerService(int world_size, std::string cluster_secret = "");

  // Random per controller run; workers scope their store keys by it and stop heartbeating
  // (and exit) when a controller at their address answers with another one.
  const std::string& session_id() const { return session_id_; }
  int world_size() const { return world_size_; }

  // One entry per rank; empty until that rank registered.
  std::vector<std::optional<WorkerRegistration>> Registrations() const;

  // Wakes every waiting StoreGet with UNAVAILABLE and refuses new registrations.
  void Shutdown();

  grpc::Status Register(grpc::ServerContext* context, const loom::v1::RegisterRequest* request,
                        loom::v1::RegisterResponse* response) override;
  grpc::Status Heartbeat(grpc::ServerContext* context, const loom::v1::HeartbeatRequest* request,
                         loom::v1::HeartbeatResponse* response) override;
  grpc::Status StoreSet(grpc::ServerContext* context, const loom::v1::StoreSetRequest* request,
                        loom::v1::StoreSetResponse* response) override;
  grpc::Status StoreGet(grpc::ServerContext* context, const loom::v1::StoreGetRequest* request,
                        loom::v1::StoreGetResponse* response) override;

 private:
  const int world_size_;
  const std::string session_id_;
  const std::string cluster_secret_;
  mutable absl::Mutex mu_;
  absl::CondVar store_changed_;
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::optional<WorkerRegistration>> workers_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::string> store_ ABSL_GUARDED_BY(mu_);
};

}  // namespace loom

#endif  // LOOM_CONTROLLER_CONTROLLER_SERVICE_H_
