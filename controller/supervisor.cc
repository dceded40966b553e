#include "controller/supervisor.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status.h"
#include "kernels/threading.h"
#include "loom/v1/worker.grpc.pb.h"
#include "proto/cluster_channel.h"

extern char** environ;

namespace loom {
namespace {

const std::string kSecretEnvPrefix = absl::StrCat(kClusterSecretEnv, "=");

std::string DescribeWaitStatus(int status) {
  if (WIFEXITED(status)) return absl::StrCat("exited with code ", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return absl::StrCat("was killed by signal ", WTERMSIG(status));
  return absl::StrCat("ended with wait status ", status);
}

std::string ReadTail(const std::string& path, size_t max_chars) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  while (!s.empty() && s.back() == '\n') s.pop_back();
  return s.size() > max_chars ? "..." + s.substr(s.size() - max_chars) : s;
}

}  // namespace

Supervisor::Supervisor(const SupervisorOptions& options) : options_(options) {}

Supervisor::~Supervisor() { Stop(); }

absl::StatusOr<std::unique_ptr<Supervisor>> Supervisor::Start(const SupervisorOptions& options) {
  if (options.world_size < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("world size must be at least 1, got ", options.world_size));
  }
  if (!options.external && options.worker_binary.empty()) {
    return absl::InvalidArgumentError("the local launcher needs the loom-worker binary");
  }
  std::unique_ptr<Supervisor> s(new Supervisor(options));
  const int cores = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  s->threads_per_worker_ = options.threads_per_worker > 0 ? options.threads_per_worker
                                                          : std::max(1, cores / options.world_size);
  s->service_ = std::make_unique<ControllerService>(options.world_size, options.cluster_secret);
  absl::Status status = s->StartServer();
  if (status.ok() && options.on_listening) options.on_listening(s->controller_address_);
  for (int rank = 0; status.ok() && !options.external && rank < options.world_size; ++rank) {
    status = s->Spawn(rank);
  }
  if (status.ok()) status = s->WaitForRegistration();
  if (!status.ok()) {
    s->Stop();
    return status;
  }
  return s;
}

absl::Status Supervisor::StartServer() {
  std::string address = options_.controller_address;
  if (!options_.external) {
    // The workers' sockets and logs: private to this user (mkdtemp creates it 0700).
    std::string tmpl = (std::filesystem::temp_directory_path() / "loom-XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) {
      return absl::InternalError(absl::StrCat("mkdtemp: ", std::strerror(errno)));
    }
    dir_ = tmpl;
    if (address.empty()) address = absl::StrCat("unix:", dir_, "/controller.sock");
  } else if (address.empty()) {
    address = "127.0.0.1:0";
  }
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(address, grpc::InsecureServerCredentials(), &port);
  LimitClusterMessages(builder);
  builder.RegisterService(service_.get());
  server_ = builder.BuildAndStart();
  const bool unix_socket = address.rfind("unix:", 0) == 0;
  if (server_ == nullptr || (!unix_socket && port == 0)) {
    return absl::UnavailableError(absl::StrCat("controller: cannot listen on ", address));
  }
  controller_address_ =
      unix_socket ? address : absl::StrCat(address.substr(0, address.rfind(':')), ":", port);
  return absl::OkStatus();
}

absl::Status Supervisor::Spawn(int rank) {
  const std::string log_path = absl::StrCat(dir_, "/rank", rank, ".log");
  std::vector<std::string> args = {options_.worker_binary,
                                   "--controller",
                                   controller_address_,
                                   "--rank",
                                   absl::StrCat(rank),
                                   "--world-size",
                                   absl::StrCat(options_.world_size),
                                   "--device",
                                   options_.device,
                                   "--threads",
                                   absl::StrCat(threads_per_worker_),
                                   "--listen",
                                   absl::StrCat("unix:", dir_, "/rank", rank, ".sock")};
  args.insert(args.end(), options_.extra_worker_args.begin(), options_.extra_worker_args.end());
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    if (!kernels::IsNumThreadsEnv(*e) && !absl::StartsWith(*e, kSecretEnvPrefix)) {
      env.push_back(*e);
    }
  }
  if (!options_.cluster_secret.empty()) {
    env.push_back(absl::StrCat(kSecretEnvPrefix, options_.cluster_secret));
  }
  env.push_back(kernels::NumThreadsEnv(threads_per_worker_));
  // Everything the child touches is ready before fork: between fork and exec it may only make
  // async-signal-safe calls (this process has gRPC and OpenMP threads).
  std::vector<char*> argv, envp;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (std::string& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  const int fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    return absl::InternalError(
        absl::StrCat("cannot create ", log_path, ": ", std::strerror(errno)));
  }
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(120);  // the parent died before prctl took effect
    dup2(fd, STDOUT_FILENO);
    dup2(fd, STDERR_FILENO);
    execve(argv[0], argv.data(), envp.data());
    const char msg[] = "loom-worker: exec failed\n";
    [[maybe_unused]] ssize_t n = write(STDERR_FILENO, msg, sizeof(msg) - 1);
    _exit(127);
  }
  close(fd);
  if (pid < 0) {
    return absl::InternalError(absl::StrCat("fork for rank ", rank, ": ", std::strerror(errno)));
  }
  {
    absl::MutexLock lock(&mu_);
    if (children_.empty()) children_.resize(options_.world_size);
    children_[rank].pid = pid;
    children_[rank].log_path = log_path;
  }
  watchers_.emplace_back([this, rank, pid] { Watch(rank, pid); });
  return absl::OkStatus();
}

void Supervisor::Watch(int rank, pid_t pid) {
  int status = 0;
  pid_t r;
  do {
    r = waitpid(pid, &status, 0);
  } while (r < 0 && errno == EINTR);
  absl::MutexLock lock(&mu_);
  children_[rank].exited = true;
  children_[rank].how = r == pid ? DescribeWaitStatus(status) : "could not be waited for";
}

absl::Status Supervisor::WaitForRegistration() {
  constexpr auto kErrorGrace = std::chrono::milliseconds(500);
  const auto deadline = std::chrono::steady_clock::now() + options_.register_timeout;
  std::optional<std::chrono::steady_clock::time_point> first_error;
  while (true) {
    // Exits first, registrations second: a worker that registers an error and then exits must
    // be reported by its error, not by its exit.
    std::vector<Child> children;
    {
      absl::MutexLock lock(&mu_);
      children = children_;
    }
    std::vector<std::optional<WorkerRegistration>> regs = service_->Registrations();
    std::vector<std::string> errors;
    std::vector<int> missing;
    for (int rank = 0; rank < options_.world_size; ++rank) {
      if (regs[rank].has_value() && !regs[rank]->error.empty()) {
        errors.push_back(absl::StrCat("rank ", rank, ": ", regs[rank]->error));
      } else if (!regs[rank].has_value()) {
        missing.push_back(rank);
        if (!options_.external && children[rank].exited) {
          errors.push_back(absl::StrCat("rank ", rank, " ", children[rank].how,
                                        " before registering; its stderr:\n",
                                        ReadTail(children[rank].log_path, 2000)));
        }
      }
    }
    // One failing rank usually means others fail the same way: give them a moment to say so,
    // so the error lists every failing rank, not whichever was first.
    if (!errors.empty()) {
      const auto now = std::chrono::steady_clock::now();
      if (!first_error.has_value()) first_error = now;
      size_t unresolved = 0;  // neither registered nor exited
      for (int rank : missing) {
        if (options_.external || !children[rank].exited) ++unresolved;
      }
      if (unresolved == 0 || now - *first_error > kErrorGrace) {
        return absl::UnavailableError(
            absl::StrCat("workers failed to start: ", absl::StrJoin(errors, "\n")));
      }
    }
    if (missing.empty()) return absl::OkStatus();
    if (std::chrono::steady_clock::now() > deadline) {
      std::string message =
          absl::StrCat("rank", missing.size() > 1 ? "s " : " ", absl::StrJoin(missing, ", "),
                       " did not register within ", options_.register_timeout.count(), " ms");
      if (options_.external) {
        absl::StrAppend(&message, " (external launcher: start them with --controller ",
                        controller_address_, ")");
      } else {
        for (int rank : missing) {
          absl::StrAppend(&message, "\nrank ", rank, " stderr:\n", StderrTail(rank, 1500));
        }
      }
      return absl::DeadlineExceededError(message);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

std::vector<std::string> Supervisor::worker_addresses() const {
  std::vector<std::string> out;
  for (const auto& reg : service_->Registrations()) out.push_back(reg ? reg->address : "");
  return out;
}

std::vector<int64_t> Supervisor::worker_pids() const {
  std::vector<int64_t> out;
  for (const auto& reg : service_->Registrations()) out.push_back(reg ? reg->pid : 0);
  return out;
}

absl::Status Supervisor::RankStatus(int rank) const {
  if (rank < 0 || rank >= options_.world_size) {
    return absl::InvalidArgumentError(absl::StrCat("no rank ", rank));
  }
  if (!options_.external) {
    absl::MutexLock lock(&mu_);
    if (children_[rank].exited) {
      return absl::UnavailableError(absl::StrCat("rank ", rank, " ", children_[rank].how));
    }
    return absl::OkStatus();
  }
  const auto reg = service_->Registrations()[rank];
  if (!reg.has_value())
    return absl::UnavailableError(absl::StrCat("rank ", rank, " is not registered"));
  const absl::Duration silent = absl::Now() - reg->last_heartbeat;
  if (silent > absl::FromChrono(options_.heartbeat_timeout)) {
    return absl::UnavailableError(
        absl::StrCat("rank ", rank, " sent no heartbeat for ", absl::FormatDuration(silent)));
  }
  return absl::OkStatus();
}

std::string Supervisor::StderrTail(int rank, size_t max_chars) const {
  absl::MutexLock lock(&mu_);
  if (rank < 0 || rank >= static_cast<int>(children_.size())) return "";
  return ReadTail(children_[rank].log_path, max_chars);
}

bool Supervisor::WaitForChildren(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    bool all_exited = true;
    {
      absl::MutexLock lock(&mu_);
      for (const Child& c : children_) all_exited = all_exited && (c.pid <= 0 || c.exited);
    }
    if (all_exited) return true;
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

void Supervisor::Stop(bool kill_now) {
  absl::MutexLock stop_lock(&stop_mu_);
  {
    absl::MutexLock lock(&mu_);
    if (stopped_) return;
    stopped_ = true;
  }
  // 1. Ask every registered worker to shut down, all at once.
  std::vector<std::thread> asks;
  if (service_ != nullptr && !kill_now) {
    for (const auto& reg : service_->Registrations()) {
      if (!reg.has_value() || reg->address.empty() || !reg->error.empty()) continue;
      const std::string address = reg->address;
      const auto deadline = std::chrono::system_clock::now() + options_.stop_phase_timeout;
      asks.emplace_back([address, deadline, secret = options_.cluster_secret] {
        auto stub = loom::v1::Worker::NewStub(ClusterChannel(address, secret));
        grpc::ClientContext context;
        context.set_deadline(deadline);
        loom::v1::WorkerShutdownRequest request;
        loom::v1::WorkerShutdownResponse response;
        stub->Shutdown(&context, request, &response).ok();  // a dead worker is fine
      });
    }
  }
  for (std::thread& t : asks) t.join();
  // 2. SIGTERM, then 3. SIGKILL, for whatever is still running; the watchers reap.
  for (int sig : {0, SIGTERM, SIGKILL}) {
    if (kill_now && sig != SIGKILL) continue;
    if (sig != 0) {
      absl::MutexLock lock(&mu_);
      for (const Child& c : children_) {
        if (c.pid > 0 && !c.exited) kill(c.pid, sig);
      }
    }
    if (WaitForChildren(sig == SIGKILL ? std::chrono::minutes(1) : options_.stop_phase_timeout)) {
      break;
    }
  }
  for (std::thread& t : watchers_) t.join();
  watchers_.clear();
  if (service_ != nullptr) service_->Shutdown();
  if (server_ != nullptr) {
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
    server_.reset();
  }
  if (!dir_.empty()) {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
}

}  // namespace loom
