// A Gloo rendezvous store served by the controller (DESIGN.md §3.9): the ranks of a group meet
// through the controller's StoreSet/StoreGet RPCs, so no shared filesystem or extra service is
// needed, and externally launched workers meet the same way as local ones.
//
// Keys are scoped by the controller session (and, through GlooOptions::prefix, by the group
// generation). Gloo's Store interface reports errors by throwing; this class throws
// gloo::IoException naming the key and the gRPC status, which GlooCommunicator::Create turns
// into a Status. Thread-safe (gRPC stubs are).
#ifndef LOOM_WORKER_CONTROLLER_STORE_H_
#define LOOM_WORKER_CONTROLLER_STORE_H_

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "gloo/rendezvous/store.h"
#include "loom/v1/worker.grpc.pb.h"

namespace loom {

class ControllerStore : public gloo::rendezvous::Store {
 public:
  // `stub` talks to the controller; `session_id` (from RegisterResponse) prefixes every key.
  ControllerStore(std::shared_ptr<loom::v1::Controller::StubInterface> stub, std::string session_id,
                  std::chrono::milliseconds default_timeout = std::chrono::seconds(30));

  void set(const std::string& key, const std::vector<char>& data) override;
  std::vector<char> get(const std::string& key) override;
  void wait(const std::vector<std::string>& keys) override;
  void wait(const std::vector<std::string>& keys,
            const std::chrono::milliseconds& timeout) override;

 private:
  // StoreGet of `keys`, waiting up to `timeout` for all of them to exist.
  std::vector<std::string> Get(const std::vector<std::string>& keys,
                               std::chrono::milliseconds timeout);
  std::string Scoped(const std::string& key) const { return session_id_ + "/" + key; }

  std::shared_ptr<loom::v1::Controller::StubInterface> stub_;
  const std::string session_id_;
  const std::chrono::milliseconds default_timeout_;
};

}  // namespace loom

#endif  // LOOM_WORKER_CONTROLLER_STORE_H_
