#include "controller/worker_processes.h"

#include "common/status.h"

namespace loom {
namespace {

absl::Status ShuttingDown() { return absl::UnavailableError("the server is shutting down"); }

}  // namespace

absl::StatusOr<std::unique_ptr<WorkerProcesses>> WorkerProcesses::Start(
    const SupervisorOptions& options, std::chrono::milliseconds init_timeout) {
  std::unique_ptr<WorkerProcesses> p(new WorkerProcesses());
  LOOM_ASSIGN_OR_RETURN(p->supervisor_, Supervisor::Start(options));
  WorkerGroupOptions group;
  group.addresses = p->supervisor_->worker_addresses();
  group.cluster_secret = options.cluster_secret;
  group.init_timeout = init_timeout;
  Supervisor* supervisor = p->supervisor_.get();
  group.rank_status = [supervisor](int rank) { return supervisor->RankStatus(rank); };
  LOOM_ASSIGN_OR_RETURN(std::unique_ptr<WorkerGroup> connected, WorkerGroup::Connect(group));
  absl::MutexLock lock(&p->group_mu_);
  p->group_ = std::move(connected);
  return p;
}

WorkerProcesses::~WorkerProcesses() { Stop(); }

absl::StatusOr<GroupInitResult> WorkerProcesses::Init(const EngineConfig& config,
                                                      int num_threads) {
  absl::ReaderMutexLock lock(&group_mu_);
  if (group_ == nullptr) return ShuttingDown();
  return group_->Init(config, num_threads);
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
  for (int r = 0; r < supervisor_->world_size(); ++r) {
    absl::Status s = supervisor_->RankStatus(r);
    if (!s.ok()) return absl::UnavailableError(std::string(s.message()));
  }
  absl::ReaderMutexLock lock(&group_mu_);
  if (group_ == nullptr) return ShuttingDown();
  return group_->broken();
}

std::vector<RankProcess> WorkerProcesses::Processes() const {
  const auto regs = supervisor_->controller_service().Registrations();
  std::vector<RankProcess> out(static_cast<size_t>(supervisor_->world_size()));
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

void WorkerProcesses::Stop() {
  {
    absl::WriterMutexLock lock(&group_mu_);
    group_.reset();
  }
  if (supervisor_) supervisor_->Stop();
}

}  // namespace loom
