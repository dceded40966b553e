// Multi-host over a real (virtual) network: network namespaces joined by veth pairs through a
// bridge stand for three hosts. The controller (`loom serve --launcher external` on a fixed
// address) runs in one, one worker in each of two others — each through tools/run_worker.sh with
// its rank from SLURM_PROCID / SLURM_NTASKS, the command the Slurm recipe of docs/deploy.md runs
// — and Gloo binds the veth interface named by GLOO_SOCKET_IFNAME (for the steps too, as
// LOOM_CPU_COLLECTIVES=gloo keeps the ranks from sharing memory). Generation at TP=2 across them
// equals the fixture's HF reference; a remote worker SIGKILLed is brought back by its restart
// loop, the controller heals (restarts == 1) and generation equals the reference again.
//
// Needs root and iproute2 (tools/setup.sh); elsewhere it skips, saying why. Namespaces, links
// and every process in them are removed at the end, also when the test fails.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "tests/e2e/weight_test_util.h"
#include "tests/test_paths.h"

extern char** environ;

namespace loom {
namespace {

using Clock = std::chrono::steady_clock;

// Runs a shell command; its exit code, with its output in `out`.
int Sh(const std::string& command, std::string* out = nullptr) {
  FILE* p = popen((command + " 2>&1").c_str(), "r");
  if (p == nullptr) return -1;
  std::string text;
  char buf[512];
  while (fgets(buf, sizeof(buf), p) != nullptr) text += buf;
  const int status = pclose(p);
  if (out != nullptr) *out = text;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Three "hosts" — c (controller), w0, w1 — and a switch namespace holding a bridge that each
// host's veth (named loom0 inside it) is plugged into; the test's own namespace joins the bridge
// too, to reach the controller's client API. Subnet 10.X.Y.0/24 from this process id, so that
// concurrent runs do not collide.
class VirtualHosts {
 public:
  VirtualHosts() {
    const int id = static_cast<int>(getpid() % 100000);
    tag_ = absl::StrCat("lm", id);
    subnet_ = absl::StrCat("10.", 200 + id % 50, ".", id % 250, ".");
  }
  ~VirtualHosts() { Remove(); }

  // Empty when every namespace and link is up; otherwise why not (and nothing is left).
  std::string Create() {
    const std::string sw = Ns("s");
    std::vector<std::string> steps = {
        absl::StrCat("ip netns add ", sw),
        absl::StrCat("ip -n ", sw, " link add br0 type bridge"),
        absl::StrCat("ip -n ", sw, " link set br0 up"),
        // The test's own end, 10.X.Y.1.
        absl::StrCat("ip link add ", tag_, "r type veth peer name pr netns ", sw),
        absl::StrCat("ip -n ", sw, " link set pr master br0 up"),
        absl::StrCat("ip addr add ", Address(1), "/24 dev ", tag_, "r"),
        absl::StrCat("ip link set ", tag_, "r up"),
    };
    int host = 2;
    for (const char* name : {"c", "w0", "w1"}) {
      const std::string ns = Ns(name);
      steps.push_back(absl::StrCat("ip netns add ", ns));
      steps.push_back(absl::StrCat("ip -n ", ns, " link set lo up"));
      steps.push_back(absl::StrCat("ip -n ", sw, " link add p", name,
                                   " type veth peer name loom0 netns ", ns));
      steps.push_back(absl::StrCat("ip -n ", sw, " link set p", name, " master br0 up"));
      steps.push_back(absl::StrCat("ip -n ", ns, " addr add ", Address(host++), "/24 dev loom0"));
      steps.push_back(absl::StrCat("ip -n ", ns, " link set loom0 up"));
    }
    for (const std::string& step : steps) {
      std::string out;
      created_ = true;
      if (Sh(step, &out) != 0) {
        Remove();
        return absl::StrCat("`", step, "` failed: ", out);
      }
    }
    return "";
  }

  std::string Ns(const std::string& name) const { return absl::StrCat(tag_, name); }
  std::string Address(int host) const { return absl::StrCat(subnet_, host); }

  // Kills every process in the namespaces, then removes them and the test's link.
  void Remove() {
    if (!created_) return;
    created_ = false;
    for (const char* name : {"c", "w0", "w1", "s"}) {
      const std::string ns = Ns(name);
      Sh(absl::StrCat("ip netns pids ", ns, " 2>/dev/null | xargs -r kill -9"));
    }
    for (const char* name : {"c", "w0", "w1", "s"}) {
      Sh(absl::StrCat("ip netns del ", Ns(name), " 2>/dev/null"));
    }
    Sh(absl::StrCat("ip link del ", tag_, "r 2>/dev/null"));
  }

 private:
  std::string tag_, subnet_;
  bool created_ = false;
};

// `/bin/sh -c command` in a process group of its own that dies with the test; its pid.
pid_t SpawnGroup(const std::string& command) {
  const pid_t pid = fork();
  if (pid == 0) {
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    const char* argv[] = {"/bin/sh", "-c", command.c_str(), nullptr};
    execve(argv[0], const_cast<char**>(argv), environ);
    _exit(127);
  }
  return pid;
}

void KillGroup(pid_t pid) {
  if (pid <= 0) return;
  kill(-pid, SIGKILL);
  waitpid(pid, nullptr, 0);
}

loom::v1::GetStatusResponse Status(loom::v1::Loom::Stub& stub) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  loom::v1::GetStatusResponse response;
  stub.GetStatus(&context, loom::v1::GetStatusRequest(), &response).ok();
  return response;
}

bool AllReady(const loom::v1::GetStatusResponse& s, int64_t restarts) {
  bool ready = s.ranks_size() == 2 && !s.healing() && s.restarts() >= restarts;
  for (const auto& r : s.ranks()) ready = ready && r.state() == "ready";
  return ready;
}

std::vector<std::vector<int32_t>> Greedy(loom::v1::Loom::Stub& stub,
                                         const testing::HfReference& ref) {
  std::vector<std::vector<int32_t>> out;
  for (size_t i = 0; i < ref.prompts.size(); ++i) {
    testing::Streamed g =
        testing::GenerateIds(stub, ref.prompts[i], static_cast<int>(ref.greedy[i].size()));
    EXPECT_TRUE(g.status.ok()) << g.status.error_message();
    out.push_back(g.ids);
  }
  return out;
}

TEST(MultiHostTest, TpTwoAcrossNamespacesGeneratesAndHealsAKilledRemoteWorker) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to create network namespaces (ip netns)";
  if (Sh("command -v ip") != 0) {
    GTEST_SKIP() << "needs iproute2's `ip` to create network namespaces (tools/setup.sh)";
  }
  VirtualHosts hosts;
  if (const std::string why = hosts.Create(); !why.empty()) {
    GTEST_SKIP() << "cannot create network namespaces joined by veth pairs: " << why;
  }
  const auto started = Clock::now();
  const std::string dir = testing::MakeTempDir("loom-multi-host");
  const std::string controller_host = hosts.Address(2);
  const std::string controller = absl::StrCat(controller_host, ":7070");  // fixed: heals
  const std::string api = absl::StrCat(controller_host, ":7080");
  const std::string secret = "LOOM_CLUSTER_SECRET=multi-host-test-0123456789abcdef";
  const std::string serve_log = dir + "/serve.log";
  pid_t serve = SpawnGroup(absl::StrCat(
      "exec ip netns exec ", hosts.Ns("c"), " env ", secret, " ", testing::BinaryDir(),
      "/tools/loom serve ", testing::WeightTestServe(""), " --tp 2 --launcher external",
      " --controller-address ", controller, " --host ", controller_host,
      " --port 7080 --http-port 0 --register-timeout 30 >", serve_log, " 2>&1"));
  std::vector<pid_t> loops;
  for (int rank = 0; rank < 2; ++rank) {
    // As srun starts each task: the rank and world size in the environment, the same script.
    loops.push_back(SpawnGroup(absl::StrCat(
        "exec ip netns exec ", hosts.Ns(absl::StrCat("w", rank)), " env ", secret,
        " SLURM_PROCID=", rank, " SLURM_NTASKS=2 GLOO_SOCKET_IFNAME=loom0",
        // The stand-in hosts share one kernel: without this the ranks would share memory.
        " LOOM_CPU_COLLECTIVES=gloo LOOM_WORKER=",
        testing::BinaryDir(), "/worker/loom-worker ", testing::SourceDir(),
        "/tools/run_worker.sh --controller ", controller, " --threads 1 >", dir, "/worker", rank,
        ".log 2>&1")));
  }
  struct Cleanup {
    pid_t& serve;
    std::vector<pid_t>& loops;
    VirtualHosts& hosts;
    ~Cleanup() {
      KillGroup(serve);
      for (pid_t p : loops) KillGroup(p);
      hosts.Remove();
    }
  } cleanup{serve, loops, hosts};
  const auto logs = [&] {
    return absl::StrCat("--- serve:\n", ReadFile(serve_log), "--- worker 0:\n",
                        ReadFile(dir + "/worker0.log"), "--- worker 1:\n",
                        ReadFile(dir + "/worker1.log"));
  };

  auto deadline = Clock::now() + std::chrono::seconds(40);
  while (Clock::now() < deadline && ReadFile(serve_log).find("ready:") == std::string::npos) {
    ASSERT_EQ(waitpid(serve, nullptr, WNOHANG), 0) << "loom serve exited\n" << logs();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_NE(ReadFile(serve_log).find("ready:"), std::string::npos) << logs();
  auto stub = loom::v1::Loom::NewStub(grpc::CreateChannel(api, grpc::InsecureChannelCredentials()));
  const testing::HfReference ref = testing::WeightTestReference();
  EXPECT_EQ(Greedy(*stub, ref), ref.greedy) << logs();

  // Each rank registered from its own host.
  loom::v1::GetStatusResponse status = Status(*stub);
  ASSERT_EQ(status.ranks_size(), 2) << logs();
  for (int rank = 0; rank < 2; ++rank) {
    EXPECT_TRUE(absl::StartsWith(status.ranks(rank).address(), hosts.Address(3 + rank)))
        << "rank " << rank << " at " << status.ranks(rank).address();
  }
  const int64_t killed = status.ranks(1).pid();
  const int64_t survivor = status.ranks(0).pid();
  ASSERT_GT(killed, 0);
  const auto killed_at = Clock::now();
  ASSERT_EQ(kill(static_cast<pid_t>(killed), SIGKILL), 0);

  deadline = Clock::now() + std::chrono::seconds(40);
  while (Clock::now() < deadline && !AllReady(Status(*stub), 1)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  status = Status(*stub);
  ASSERT_TRUE(AllReady(status, 1)) << logs();
  std::printf("recovery: remote worker SIGKILLed at TP=2 across namespaces: ready again after "
              "%.2f s\n",
              std::chrono::duration<double>(Clock::now() - killed_at).count());
  EXPECT_EQ(status.restarts(), 1);
  EXPECT_TRUE(absl::StrContains(status.last_failure(), "rank 1")) << status.last_failure();
  EXPECT_NE(status.ranks(1).pid(), killed);
  EXPECT_NE(status.ranks(0).pid(), survivor);  // asked to shut down, then started by its loop
  EXPECT_FALSE(testing::ProcessExists(killed));
  EXPECT_EQ(Greedy(*stub, ref), ref.greedy) << logs();
  std::printf("multi-host test took %.1f s\n",
              std::chrono::duration<double>(Clock::now() - started).count());
}

}  // namespace
}  // namespace loom
