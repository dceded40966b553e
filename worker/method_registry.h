// The worker's collective-RPC methods: a name -> handler table, so new methods are added without
// touching the transport (DESIGN.md §1). A handler takes the call's JSON args and returns a JSON
// result or a Status; the Worker service turns that Status into the gRPC one.
//
// Each method declares what calling it takes (MethodSpec): the controller reads the table from
// `describe` and checks every CollectiveRpc against it before any rank sees the call (the
// admin key, the allowed path roots; docs/security.md).
//
// Registration happens before the worker serves; after that the table is only read, so Call may
// run from any number of threads at once (each handler guards its own state).
#ifndef LOOM_WORKER_METHOD_REGISTRY_H_
#define LOOM_WORKER_METHOD_REGISTRY_H_

#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"

namespace loom {

using MethodHandler = std::function<absl::StatusOr<nlohmann::json>(const nlohmann::json& args)>;

struct MethodSpec {
  // Needs the admin key: the method changes state (weights, config, sleep) or touches the file
  // system. The default, so a method is only open to client keys when it says so.
  bool admin = true;
  // JSON pointers of the args that name a file or directory ("/path", "/source/model"); each
  // must lie in the server's allowed roots.
  std::vector<std::string> path_args;
  // May run kernels (loads, conversions): the rank runs it on a short-lived thread of its own,
  // whose OpenMP pool ends with it (kernels/threading.h says why). Methods that only read the
  // rank's state run on the calling thread: a thread per call cost a no-op call most of its time.
  bool runs_kernels = true;
};

// A method that only reads the rank's state: callable with the client key, run in place.
inline MethodSpec ReadOnlyMethod() { return MethodSpec{.admin = false, .runs_kernels = false}; }

class MethodRegistry {
 public:
  // AlreadyExists when `name` is taken; InvalidArgument for an empty name or handler.
  absl::Status Register(const std::string& name, MethodHandler handler, MethodSpec spec = {});

  // Runs `name`; NotFound (listing the registered names) when there is no such method.
  absl::StatusOr<nlohmann::json> Call(const std::string& name, const nlohmann::json& args) const;

  std::vector<std::string> Names() const;  // sorted
  // The spec `name` was registered with; nullptr when there is no such method.
  const MethodSpec* Spec(const std::string& name) const;

  // {name: {"admin": bool, "path_args": [pointer, ...]}} for every method, as `describe` reports
  // it under "methods".
  nlohmann::json Specs() const;

 private:
  struct Entry {
    MethodHandler handler;
    MethodSpec spec;
  };
  std::map<std::string, Entry> handlers_;
};

// Test-only methods, registered when a worker runs with --enable-test-methods:
//   stall {"seconds": x, "rank": r}  waits x seconds (at most 600; returns early once `stopping`
//                               is notified) and returns {"slept_seconds": x}; with "rank", only
//                               rank r sleeps and the others return at once
//   fail_on_rank {"rank": r}    fails with Internal on rank r, returns {} on the others
absl::Status RegisterTestMethods(MethodRegistry& registry, int rank,
                                 const absl::Notification* stopping);

}  // namespace loom

#endif  // LOOM_WORKER_METHOD_REGISTRY_H_
