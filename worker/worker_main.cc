// loom-worker: one tensor-parallel rank. Started by the controller's supervisor (or by an outside
// launcher such as Slurm or Kubernetes), it serves the Worker service, registers with the
// controller, and lives until the controller tells it to stop or goes away.
//
//   loom-worker --controller ADDR [--rank R] [--world-size N] [--device cpu|cuda|cuda:K] [--threads T]
//               [--listen ADDR] [--enable-test-methods] [--controller-timeout-ms MS]
//               [--cluster-secret-file PATH]
//
// Without --rank / --world-size, the rank and world size come from the launcher's environment
// (Slurm, a Kubernetes StatefulSet; worker/launch_env.h). --listen takes "unix:/path" or "host:port" (default 127.0.0.1:0, any free port). A worker that
// cannot serve (bad device, no listening port) still registers, with the error, so the controller
// can report "rank R: <error>"; then it exits 1. Exit codes: 0 stopped by the controller, 1 could
// not start, 2 bad command line, 3 lost the controller. With a cluster secret (the file, or
// $LOOM_CLUSTER_SECRET) every call this worker takes must carry it, and its own calls to the
// controller carry it (proto/cluster_channel.h); a Unix socket it listens on is made 0600.
#include <grpcpp/grpcpp.h>
#include <malloc.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/device.h"
#include "common/flags.h"
#include "common/status.h"
#include "kernels/execution_context.h"
#include "loom/v1/worker.grpc.pb.h"
#include "proto/cluster_channel.h"
#include "worker/launch_env.h"
#include "worker/worker_service.h"

namespace loom {
namespace {

struct Flags {
  std::string controller;
  int rank = -1;
  int world_size = 0;
  std::string device = "cpu";
  int threads = 0;
  std::string listen = "127.0.0.1:0";
  bool enable_test_methods = false;
  int64_t controller_timeout_ms = 5000;
  int64_t register_timeout_ms = 60000;
  std::string cluster_secret;
};

// The help text is kUsage below; the specs only declare the flags to the parser.
const std::vector<cli::FlagSpec>& FlagSpecs() {
  static const auto* specs = new std::vector<cli::FlagSpec>{
      {"controller"},
      {"rank"},
      {"world-size"},
      {"device"},
      {"threads"},
      {"listen"},
      {"controller-timeout-ms"},
      {"register-timeout-ms"},
      {"cluster-secret-file"},
      {"enable-test-methods", true},
      {"help", true, "", "", 'h'},
  };
  return *specs;
}

absl::StatusOr<Flags> FlagsFrom(const cli::Flags& parsed) {
  if (!parsed.positional().empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("unexpected argument ", parsed.positional().front()));
  }
  Flags flags;
  flags.controller = parsed.String("controller");
  flags.device = parsed.String("device", flags.device);
  flags.listen = parsed.String("listen", flags.listen);
  flags.enable_test_methods = parsed.Bool("enable-test-methods");
  std::optional<int64_t> rank_flag, world_size_flag;
  if (parsed.Has("rank")) {
    LOOM_ASSIGN_OR_RETURN(rank_flag, parsed.Int("rank", 0));
  }
  if (parsed.Has("world-size")) {
    LOOM_ASSIGN_OR_RETURN(world_size_flag, parsed.Int("world-size", 0));
  }
  LOOM_ASSIGN_OR_RETURN(const int64_t threads, parsed.Int("threads", flags.threads));
  flags.threads = static_cast<int>(threads);
  LOOM_ASSIGN_OR_RETURN(flags.controller_timeout_ms,
                        parsed.Int("controller-timeout-ms", flags.controller_timeout_ms));
  LOOM_ASSIGN_OR_RETURN(flags.register_timeout_ms,
                        parsed.Int("register-timeout-ms", flags.register_timeout_ms));
  LOOM_ASSIGN_OR_RETURN(flags.cluster_secret,
                        ClusterSecretFrom(parsed.String("cluster-secret-file")));
  if (flags.controller.empty()) return absl::InvalidArgumentError("--controller is required");
  LOOM_ASSIGN_OR_RETURN(const RankAndWorld where, ResolveRankAndWorld(rank_flag, world_size_flag));
  flags.rank = where.rank;
  flags.world_size = where.world_size;
  if (flags.threads <= 0) {
    const int cores = static_cast<int>(std::thread::hardware_concurrency());
    flags.threads = std::max(1, cores / flags.world_size);
  }
  return flags;
}

// The device this rank binds, checked at start so that a GPU that is not there (or a build
// without CUDA) is reported to the controller as this rank's start error, naming the rank.
absl::Status CheckDevice(const std::string& device, int rank, int world_size) {
  LOOM_ASSIGN_OR_RETURN(const DeviceSpec spec, ParseDeviceSpec(device));
  if (spec.kind == DeviceKind::kCpu) return absl::OkStatus();
  return DeviceIndexForRank(spec, rank, world_size, kernels::VisibleCudaDevices()).status();
}

std::string Hostname() {
  char name[256] = {};
  gethostname(name, sizeof(name) - 1);
  return name;
}

// The host part of "host:port" ("[::1]:0" keeps its brackets off).
std::string HostOf(const std::string& address) {
  const size_t colon = address.rfind(':');
  std::string host = colon == std::string::npos ? address : address.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  return host;
}

constexpr char kUsage[] =
    "usage: loom-worker --controller HOST:PORT --rank R --world-size N [options]\n\n"
    "One tensor-parallel rank of a Loom cluster. `loom serve` starts these itself; start them\n"
    "by hand (or from Slurm, Kubernetes) for `loom serve --launcher external`.\n\n"
    "  --controller ADDR            the controller's address (required)\n"
    "  --rank R --world-size N      this rank and the number of ranks; without the flags,\n"
    "                               from SLURM_PROCID / SLURM_NTASKS (srun), or a Kubernetes\n"
    "                               StatefulSet pod's ordinal (HOSTNAME <set>-R) with\n"
    "                               LOOM_WORLD_SIZE (docs/deploy.md)\n"
    "  --device D                   cpu, cuda (rank R binds GPU R) or cuda:K (default cpu)\n"
    "  --threads T                  CPU threads (default: cores / world size)\n"
    "  --listen ADDR                where to serve: host:port or unix:/path (default 127.0.0.1:0)\n"
    "  --controller-timeout-ms MS   exit when the controller is unreachable this long (5000)\n"
    "  --register-timeout-ms MS     give up registering after this long (60000)\n"
    "  --cluster-secret-file PATH   the cluster's secret (default $LOOM_CLUSTER_SECRET): every\n"
    "                               call to and from this worker must carry it\n"
    "  --enable-test-methods        register the test-only stall and fail_on_rank methods\n";

int Run(int argc, char** argv) {
  absl::StatusOr<cli::Flags> command_line = cli::Flags::Parse(argc, argv, 1, FlagSpecs());
  if (command_line.ok() && command_line->Bool("help")) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  absl::StatusOr<Flags> parsed =
      command_line.ok() ? FlagsFrom(*command_line) : command_line.status();
  if (!parsed.ok()) {
    std::fprintf(stderr, "loom-worker: %s\n", std::string(parsed.status().message()).c_str());
    return 2;
  }
  const Flags& flags = *parsed;
  const std::string who = absl::StrCat("loom-worker rank ", flags.rank, " of ", flags.world_size);

  const bool unix_socket = absl::StartsWith(flags.listen, "unix:");
  std::string host = unix_socket ? "127.0.0.1" : HostOf(flags.listen);
  if (host == "0.0.0.0" || host == "::" || host.empty()) host = Hostname();

  WorkerServiceOptions options;
  options.rank = flags.rank;
  options.world_size = flags.world_size;
  options.device = flags.device;
  options.num_threads = flags.threads;
  options.enable_test_methods = flags.enable_test_methods;
  options.hostname = host;
  WorkerService service(options, flags.cluster_secret);

  absl::Status start_error = CheckDevice(flags.device, flags.rank, flags.world_size);
  std::unique_ptr<grpc::Server> server;
  std::string address;
  if (start_error.ok()) {
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort(flags.listen, grpc::InsecureServerCredentials(), &port);
    LimitClusterMessages(builder);
    builder.RegisterService(&service);
    server = builder.BuildAndStart();
    if (server == nullptr || (!unix_socket && port == 0)) {
      start_error = absl::UnavailableError(absl::StrCat("cannot listen on ", flags.listen));
    } else if (unix_socket && chmod(flags.listen.substr(5).c_str(), 0600) != 0) {
      start_error = absl::UnavailableError(
          absl::StrCat("cannot make ", flags.listen, " private (chmod 0600)"));
    } else {
      address = unix_socket ? flags.listen : absl::StrCat(host, ":", port);
    }
  }

  auto channel = ClusterChannel(flags.controller, flags.cluster_secret);
  std::shared_ptr<loom::v1::Controller::StubInterface> controller =
      loom::v1::Controller::NewStub(channel);
  loom::v1::RegisterRequest request;
  request.set_rank(flags.rank);
  request.set_world_size(flags.world_size);
  request.set_address(address);
  request.set_pid(getpid());
  request.set_device(flags.device);
  request.set_hostname(Hostname());
  if (!start_error.ok()) request.set_error(std::string(start_error.message()));
  loom::v1::RegisterResponse response;
  grpc::ClientContext context;
  context.set_wait_for_ready(true);  // an outside launcher may start workers before the controller
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::milliseconds(flags.register_timeout_ms));
  grpc::Status registered = controller->Register(&context, request, &response);
  if (!start_error.ok()) {
    std::fprintf(stderr, "%s: %s\n", who.c_str(), std::string(start_error.message()).c_str());
    return 1;
  }
  if (!registered.ok()) {
    std::fprintf(stderr, "%s: cannot register with the controller at %s: %s\n", who.c_str(),
                 flags.controller.c_str(), registered.error_message().c_str());
    return 1;
  }
  service.SetController(controller, response.session_id());
  std::fprintf(stderr, "%s: serving on %s (pid %d, %d threads)\n", who.c_str(), address.c_str(),
               static_cast<int>(getpid()), flags.threads);

  // No orphans: a worker whose controller is gone, or was replaced by another session, exits.
  // (Spawned workers also die with their parent through PR_SET_PDEATHSIG; this covers workers
  // started by an outside launcher and controllers on other hosts.)
  std::thread heartbeat([&] {
    auto last_ok = std::chrono::steady_clock::now();
    while (!service.stopping().WaitForNotificationWithTimeout(absl::Seconds(1))) {
      loom::v1::HeartbeatRequest beat;
      beat.set_rank(flags.rank);
      beat.set_session_id(response.session_id());
      loom::v1::HeartbeatResponse ignored;
      grpc::ClientContext beat_context;
      beat_context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
      grpc::Status status = controller->Heartbeat(&beat_context, beat, &ignored);
      const auto now = std::chrono::steady_clock::now();
      if (status.ok()) {
        last_ok = now;
        continue;
      }
      const bool replaced = status.error_code() == grpc::StatusCode::FAILED_PRECONDITION ||
                            status.error_code() == grpc::StatusCode::NOT_FOUND;
      if (replaced || now - last_ok > std::chrono::milliseconds(flags.controller_timeout_ms)) {
        std::fprintf(stderr, "%s: lost the controller at %s (%s); exiting\n", who.c_str(),
                     flags.controller.c_str(), status.error_message().c_str());
        std::fflush(stderr);
        // The model and its communicator may be blocked in a collective: leave without
        // running destructors.
        std::_Exit(3);
      }
    }
  });

  service.stopping().WaitForNotification();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  heartbeat.join();
  std::fprintf(stderr, "%s: stopped\n", who.c_str());
  return 0;
}

}  // namespace
}  // namespace loom

int main(int argc, char** argv) {
  // Weight sets are thousands of buffers allocated and freed whole by reloads and swaps. A fixed
  // mmap threshold (glibc otherwise raises it after each large free) sends every buffer above
  // 256 KiB to its own mapping, returned to the system the moment it is freed, and few arenas
  // leave little to fragment: a rank's memory stays flat over any number of reloads.
  mallopt(M_MMAP_THRESHOLD, 256 << 10);
  mallopt(M_ARENA_MAX, 2);
  return loom::Run(argc, argv);
}
