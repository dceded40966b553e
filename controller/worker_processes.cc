#include "controller/worker_processes.h"

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace loom {
namespace {

absl::Status ShuttingDown() { return absl::UnavailableError("the server is shutting down"); }

// Whether "host:port" names a port of its own (not empty, not port 0: any free one).
bool HasFixedPort(const std::string& address) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos) return false;
  const std::string port = address.substr(colon + 1);
  return !port.empty() && port.find_first_not_of('0') != std::string::npos;
}

}  // namespace

absl::StatusOr<std::unique_ptr<WorkerProcesses>> WorkerProcesses::Start(
    const SupervisorOptions& options, std::chrono::milliseconds init_timeout) {
  std::unique_ptr<WorkerProcesses> p(new WorkerProcesses(options, init_timeout));
  absl::WriterMutexLock lock(&p->group_mu_);
  LOOM_RETURN_IF_ERROR(p->Launch());
  return p;
}

absl::Status WorkerProcesses::Launch() {
  LOOM_ASSIGN_OR_RETURN(std::unique_ptr<Supervisor> supervisor, Supervisor::Start(options_));
  WorkerGroupOptions group;
  group.addresses = supervisor->worker_addresses();
  group.cluster_secret = options_.cluster_secret;
  group.init_timeout = init_timeout_;
  Supervisor* s = supervisor.get();
  group.rank_status = [s](int rank) { return s->RankStatus(rank); };
  absl::StatusOr<std::unique_ptr<WorkerGroup>> connected = WorkerGroup::Connect(group);
  if (!connected.ok()) {
    supervisor->Stop();
    return connected.status();
  }
  supervisor_ = std::move(supervisor);
  group_ = std::move(*connected);
  return absl::OkStatus();
}

absl::Status WorkerProcesses::Restart() {
  if (options_.external && !HasFixedPort(options_.controller_address)) {
    return absl::UnimplementedError(absl::StrCat(
        "workers started by an outside launcher are not restarted: the controller listens on an "
        "ephemeral port (", options_.controller_address.empty() ? "127.0.0.1:0"
                                                                : options_.controller_address,
        "), which a restarted worker could not find again; give --controller-address a fixed "
        "port to let the cluster heal"));
  }
  {
    // Stopped first, under the shared lock: a call still waiting on a rank (one stuck in a
    // collective with the dead rank) fails now instead of holding the lock to its deadline.
    // Local workers are killed; external ones (this process cannot signal them) are asked to
    // shut down, and their launcher's restart loop starts them again.
    absl::ReaderMutexLock lock(&group_mu_);
    if (supervisor_) supervisor_->Stop(/*kill_now=*/!options_.external);
  }
  absl::WriterMutexLock lock(&group_mu_);
  group_.reset();
  supervisor_.reset();
  return Launch();
}

WorkerProcesses::~WorkerProcesses() { Stop(); }

absl::StatusOr<GroupInitResult> WorkerProcesses::Init(const EngineConfig& config,
                                                      int num_threads, uint64_t weight_version) {
  absl::ReaderMutexLock lock(&group_mu_);
  if (group_ == nullptr) return ShuttingDown();
  return group_->Init(config, num_threads, weight_version);
}

absl::StatusOr<std::vector<RankResult>> WorkerProcesses::CollectiveCall(
    const std::string& method, const std::string& args_json, std::chrono::milliseconds timeout,
    const std::vector<int>& ranks) {
  absl::ReaderMutexLock lock(&group_mu_);
  if (group_ == nullptr) return ShuttingDown();
  return group_->CollectiveCall(method, args_json, timeout, ranks);
}

absl::StatusOr<StepOutput> WorkerProcesses::Step(const StepInput& step) {
  absl::ReaderMutexLock lock(&group_mu_);
  if (group_ == nullptr) return ShuttingDown();
  return group_->Step(step);
}

absl::Status WorkerProcesses::Health() const {
  absl::ReaderMutexLock lock(&group_mu_);
  if (group_ == nullptr || supervisor_ == nullptr) return ShuttingDown();
  for (int r = 0; r < supervisor_->world_size(); ++r) {
    absl::Status s = supervisor_->RankStatus(r);
    if (!s.ok()) return absl::UnavailableError(std::string(s.message()));
  }
  return group_->broken();
}

std::vector<RankProcess> WorkerProcesses::Processes() const {
  std::vector<RankProcess> out(static_cast<size_t>(options_.world_size));
  absl::ReaderMutexLock lock(&group_mu_);
  if (supervisor_ == nullptr) {
    for (RankProcess& p : out) p.status = ShuttingDown();
    return out;
  }
  const auto regs = supervisor_->controller_service().Registrations();
  for (int r = 0; r < supervisor_->world_size(); ++r) {
    if (regs[r]) {
      out[r].pid = regs[r]->pid;
      out[r].device = regs[r]->device;
      out[r].address = regs[r]->address;
    }
    out[r].status = supervisor_->RankStatus(r);
  }
  return out;
}

double WorkerProcesses::last_step_compute_seconds() const {
  absl::ReaderMutexLock lock(&group_mu_);
  return group_ == nullptr ? 0 : group_->last_step_compute_seconds();
}

std::string WorkerProcesses::controller_address() const {
  absl::ReaderMutexLock lock(&group_mu_);
  return supervisor_ == nullptr ? "" : supervisor_->controller_address();
}

std::string WorkerProcesses::session_id() const {
  absl::ReaderMutexLock lock(&group_mu_);
  return supervisor_ == nullptr ? "" : supervisor_->session_id();
}

void WorkerProcesses::Stop() {
  absl::WriterMutexLock lock(&group_mu_);
  group_.reset();
  if (supervisor_) supervisor_->Stop();
}

}  // namespace loom
