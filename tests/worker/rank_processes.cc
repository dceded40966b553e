#include "tests/worker/rank_processes.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "kernels/threading.h"
#include "tests/test_paths.h"

extern char** environ;

namespace {

// How RunRanks tells a child process what to run.
constexpr char kRoleEnv[] = "LOOM_TEST_RANK_ROLE";
constexpr char kRankEnv[] = "LOOM_TEST_RANK";
constexpr char kWorldEnv[] = "LOOM_TEST_WORLD_SIZE";
constexpr char kDirEnv[] = "LOOM_TEST_RANK_DIR";
constexpr char kArgsEnv[] = "LOOM_TEST_RANK_ARGS";

}  // namespace

namespace loom::testing {

std::map<std::string, RankRole>& Roles() {
  static auto* roles = new std::map<std::string, RankRole>();
  return *roles;
}

namespace {

std::string ReadTail(const std::string& path, size_t max_chars) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  return s.size() > max_chars ? "..." + s.substr(s.size() - max_chars) : s;
}

std::string DescribeExit(int status) {
  if (WIFEXITED(status)) return absl::StrCat("exited with code ", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return absl::StrCat("was killed by signal ", WTERMSIG(status));
  return absl::StrCat("ended with wait status ", status);
}

}  // namespace

bool RegisterRankRole(const std::string& name, RankRole role) {
  Roles()[name] = std::move(role);
  return true;
}

absl::Status RunRanks(const std::string& name, int world_size,
                      const std::map<std::string, std::string>& args,
                      std::chrono::milliseconds timeout, std::string* dir_out) {
  const std::string dir = MakeTempDir("loom-ranks");
  if (dir_out != nullptr) *dir_out = dir;
  char exe[4096];
  const ssize_t len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  if (len <= 0) return absl::InternalError("cannot find the test binary");
  exe[len] = '\0';

  // Everything the children need is built before the first fork: between fork and exec a child
  // may only make async-signal-safe calls.
  std::string packed_args;
  for (const auto& [k, v] : args) absl::StrAppend(&packed_args, k, "=", v, ";");
  std::vector<std::string> base_env;
  for (char** e = environ; *e != nullptr; ++e) {
    // The parent's gtest sharding, filters and XML output must not leak into the children.
    if (std::strncmp(*e, "GTEST_", 6) == 0 || loom::kernels::IsNumThreadsEnv(*e)) {
      continue;
    }
    base_env.push_back(*e);
  }
  base_env.push_back(loom::kernels::NumThreadsEnv(1));
  base_env.push_back(absl::StrCat(kRoleEnv, "=", name));
  base_env.push_back(absl::StrCat(kWorldEnv, "=", world_size));
  base_env.push_back(absl::StrCat(kDirEnv, "=", dir));
  base_env.push_back(absl::StrCat(kArgsEnv, "=", packed_args));
  std::vector<std::string> argv_s = {exe, "--gtest_filter=RankProcess.DISABLED_Main",
                                     "--gtest_also_run_disabled_tests", "--gtest_brief=1"};
  std::vector<char*> argv;
  for (std::string& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);

  const pid_t parent = getpid();
  std::vector<pid_t> pids(world_size, -1);
  std::vector<std::string> logs(world_size);
  auto kill_all = [&]() {
    for (pid_t& pid : pids) {
      if (pid > 0) {
        kill(pid, SIGKILL);
        waitpid(pid, nullptr, 0);
        pid = -1;
      }
    }
  };

  for (int rank = 0; rank < world_size; ++rank) {
    std::vector<std::string> env_s = base_env;
    env_s.push_back(absl::StrCat(kRankEnv, "=", rank));
    std::vector<char*> env;
    for (std::string& e : env_s) env.push_back(e.data());
    env.push_back(nullptr);
    logs[rank] = absl::StrCat(dir, "/rank", rank, ".log");
    const int fd = open(logs[rank].c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
      kill_all();
      return absl::InternalError(absl::StrCat("cannot create ", logs[rank]));
    }
    const pid_t pid = fork();
    if (pid == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(120);  // the parent died before prctl took effect
      dup2(fd, STDOUT_FILENO);
      dup2(fd, STDERR_FILENO);
      execve(exe, argv.data(), env.data());
      _exit(121);
    }
    close(fd);
    if (pid < 0) {
      kill_all();
      return absl::InternalError(absl::StrCat("fork failed: ", std::strerror(errno)));
    }
    pids[rank] = pid;
  }

  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string failures;
  int running = world_size;
  while (running > 0 && failures.empty()) {
    for (int rank = 0; rank < world_size; ++rank) {
      if (pids[rank] <= 0) continue;
      int status = 0;
      if (waitpid(pids[rank], &status, WNOHANG) != pids[rank]) continue;
      pids[rank] = -1;
      --running;
      if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        absl::StrAppend(&failures, "rank ", rank, " of ", world_size, " ", DescribeExit(status),
                        "; its output:\n", ReadTail(logs[rank], 3000), "\n");
      }
    }
    if (running > 0 && failures.empty()) {
      if (std::chrono::steady_clock::now() > deadline) {
        for (int rank = 0; rank < world_size; ++rank) {
          if (pids[rank] > 0) {
            absl::StrAppend(&failures, "rank ", rank, " still running at the deadline; output:\n",
                            ReadTail(logs[rank], 1500), "\n");
          }
        }
        kill_all();
        return absl::DeadlineExceededError(
            absl::StrCat("role ", name, " did not finish in ", timeout.count(), " ms: ", failures));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }
  kill_all();  // the rest of a failed group would only wait for the dead rank
  if (!failures.empty()) {
    return absl::InternalError(absl::StrCat("role ", name, ": ", failures));
  }
  return absl::OkStatus();
}

}  // namespace loom::testing

// The entry point of a rank process; skipped (and disabled) in ordinary runs.
TEST(RankProcess, DISABLED_Main) {
  const char* role = std::getenv(kRoleEnv);
  if (role == nullptr) GTEST_SKIP() << "only runs as a child of RunRanks";
  loom::kernels::SetNumThreads(1);
  loom::testing::RankContext context;
  context.rank = std::atoi(std::getenv(kRankEnv));
  context.world_size = std::atoi(std::getenv(kWorldEnv));
  context.dir = std::getenv(kDirEnv);
  for (absl::string_view kv : absl::StrSplit(std::getenv(kArgsEnv), ';', absl::SkipEmpty())) {
    std::vector<std::string> parts = absl::StrSplit(kv, absl::MaxSplits('=', 1));
    context.args[parts[0]] = parts.size() > 1 ? parts[1] : "";
  }
  const auto& roles = loom::testing::Roles();
  auto it = roles.find(role);
  absl::Status status = it == roles.end() ? absl::NotFoundError(absl::StrCat("no rank role ", role))
                                          : it->second(context);
  if (!status.ok()) std::fprintf(stderr, "rank %d: %s\n", context.rank, status.ToString().c_str());
  std::fflush(stdout);
  std::fflush(stderr);
  // Skips gtest's teardown and every static destructor: the verdict is the exit code.
  _exit(status.ok() ? 0 : 1);
}
