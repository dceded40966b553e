// Supervisor: starts and stops the worker processes of one tensor-parallel group and knows
// whether each is alive (DESIGN.md §1, issue 4).
//
// Local launcher: spawns `loom-worker` once per rank (fork + exec) with its rank, world size,
// device and a CPU-thread budget (cores / N, at least 1). The controller's own service and every
// worker listen on Unix-domain sockets in a private directory (mkdtemp, mode 0700), which also
// holds each worker's stderr (rank<R>.log). Workers die with the controller: PR_SET_PDEATHSIG
// kills them when the thread that called Start ends (so call Start from a thread that lives as
// long as the group, e.g. the main thread), and every worker also exits on its own when its
// heartbeats to the controller stop being answered.
//
// External launcher: spawns nothing; the Controller service listens on TCP and waits for workers
// started elsewhere (`loom-worker --controller HOST:PORT --rank R --world-size N`). Stop asks
// them to shut down; a Supervisor started again on the same fixed address is how
// WorkerProcesses::Restart waits for their launcher to bring them back.
//
// Start returns once every rank registered, or fails naming the ranks that did not (with the
// tail of their stderr) or that reported an error ("rank R: <error>"). A watcher thread per
// child reaps it the moment it exits, so RankStatus reports a dead rank at once. Stop asks each
// worker to shut down, then sends SIGTERM, then SIGKILL, and reaps every child.
//
// Thread-safe.
#ifndef LOOM_CONTROLLER_SUPERVISOR_H_
#define LOOM_CONTROLLER_SUPERVISOR_H_

#include <grpcpp/grpcpp.h>
#include <sys/types.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "controller/controller_service.h"

namespace loom {

struct SupervisorOptions {
  int world_size = 1;
  bool external = false;       // wait for workers an outside launcher starts; spawn nothing
  std::string worker_binary;   // the loom-worker executable (local launcher)
  std::string device = "cpu";  // handed to every worker
  int threads_per_worker = 0;  // 0: max(1, cores / world_size)
  // Where the Controller service listens. Empty: a Unix socket in the private directory (local
  // launcher) or 127.0.0.1:0, any free port (external launcher).
  std::string controller_address;
  std::vector<std::string> extra_worker_args;  // appended to every worker's command line
  std::chrono::milliseconds register_timeout = std::chrono::seconds(30);
  // Each stop phase (Shutdown RPC, SIGTERM) waits this long before the next.
  std::chrono::milliseconds stop_phase_timeout = std::chrono::seconds(2);
  // Called once the Controller service listens, before waiting for registrations, with its
  // address (how `loom serve --launcher external` tells the outside launcher where to point).
  std::function<void(const std::string& controller_address)> on_listening;
  // An external worker whose heartbeats stop for this long is reported dead.
  std::chrono::milliseconds heartbeat_timeout = std::chrono::seconds(5);
  // The per-cluster secret (proto/cluster_channel.h): required of every worker's calls to the
  // Controller service, carried by the controller's calls to the workers, and handed to local
  // workers in their environment (never on a command line, which others can read). Empty: none.
  std::string cluster_secret;
};

class Supervisor {
 public:
  static absl::StatusOr<std::unique_ptr<Supervisor>> Start(const SupervisorOptions& options);
  ~Supervisor();  // Stop()

  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;

  int world_size() const { return options_.world_size; }
  int threads_per_worker() const { return threads_per_worker_; }
  // Where workers reach the controller ("unix:/dir/controller.sock" or "host:port").
  const std::string& controller_address() const { return controller_address_; }
  // The private directory (local launcher; empty for external).
  const std::string& socket_dir() const { return dir_; }
  const ControllerService& controller_service() const { return *service_; }
  const std::string& session_id() const { return service_->session_id(); }

  // Each rank's Worker service address, in rank order (valid after Start).
  std::vector<std::string> worker_addresses() const;
  // Each rank's process id as the worker reported it.
  std::vector<int64_t> worker_pids() const;

  // OK while rank's process runs (local) or heartbeats (external); otherwise Unavailable
  // naming the rank and how it ended ("rank 1 was killed by signal 9").
  absl::Status RankStatus(int rank) const;
  // The last `max_chars` of rank's stderr (local launcher), or "".
  std::string StderrTail(int rank, size_t max_chars = 2000) const;

  // Stops every worker and the Controller service; idempotent. After it returns no child is
  // left (all reaped). The stderr logs and sockets are removed with the directory. `kill_now`
  // skips the polite phases (a group being restarted after a failure: its ranks hold nothing
  // worth a clean exit, and one may hang in a collective with the dead one).
  void Stop(bool kill_now = false);

 private:
  struct Child {
    pid_t pid = -1;
    std::string log_path;
    bool exited = false;
    std::string how;  // "exited with code 1", "was killed by signal 9"
  };

  explicit Supervisor(const SupervisorOptions& options);
  absl::Status StartServer();
  absl::Status Spawn(int rank);
  absl::Status WaitForRegistration();
  void Watch(int rank, pid_t pid);
  // Waits until every child has exited or `timeout` passed; true when none is left.
  bool WaitForChildren(std::chrono::milliseconds timeout);

  const SupervisorOptions options_;
  int threads_per_worker_ = 1;
  std::string dir_;
  std::string controller_address_;
  std::unique_ptr<ControllerService> service_;
  std::unique_ptr<grpc::Server> server_;

  mutable absl::Mutex mu_;
  std::vector<Child> children_ ABSL_GUARDED_BY(mu_);
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> watchers_;  // touched by Start and Stop only
  absl::Mutex stop_mu_;                // serialises Stop
};

}  // namespace loom

#endif  // LOOM_CONTROLLER_SUPERVISOR_H_
