#include "tools/serve_child.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace loom::cli {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

fs::path SelfDir() {
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  return ec ? fs::current_path() : self.parent_path();
}

absl::StatusOr<std::unique_ptr<ServeChild>> ServeChild::Start(Options options) {
  std::string dir = (fs::temp_directory_path() / (options.name + "-XXXXXX")).string();
  if (mkdtemp(dir.data()) == nullptr) return absl::InternalError("mkdtemp failed");
  auto p = std::unique_ptr<ServeChild>(new ServeChild(dir));
  std::vector<char*> argv;
  for (std::string& a : options.argv) argv.push_back(a.data());
  argv.push_back(nullptr);
  p->pid_ = fork();
  if (p->pid_ == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    FILE* log = std::fopen(p->log_.c_str(), "w");
    if (log != nullptr) {
      dup2(fileno(log), STDOUT_FILENO);
      dup2(fileno(log), STDERR_FILENO);
    }
    execv(argv[0], argv.data());
    _exit(127);
  }
  if (p->pid_ < 0) return absl::InternalError("fork failed");
  // Loading a model on a busy CPU can take a while; the log says what went wrong otherwise.
  const auto deadline = Clock::now() + options.ready_timeout;
  while (Clock::now() < deadline) {
    const std::string out = p->Log();
    const size_t listening = out.find("loom serve: listening on ");
    const size_t http = out.find("OpenAI API on http://");
    if (listening != std::string::npos && out.find("loom serve: ready:") != std::string::npos) {
      if (http == std::string::npos && options.require_http) {
        return absl::FailedPreconditionError("the server started without its HTTP API");
      }
      const size_t a = listening + 25;
      p->address_ = out.substr(a, out.find('\n', a) - a);
      if (http != std::string::npos) {
        const size_t h = http + 21;
        p->http_address_ = out.substr(h, out.find("/v1", h) - h);
      }
      return p;
    }
    if (p->Exited()) {
      return absl::FailedPreconditionError(absl::StrCat("`", absl::StrJoin(options.argv, " "),
                                                        "` exited before it was ready:\n", out));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return absl::DeadlineExceededError(absl::StrCat(
      "the server was not ready in ", options.ready_timeout.count(), " s; its log:\n", p->Log()));
}

bool ServeChild::Exited() {
  if (pid_ <= 0) return true;
  if (waitpid(pid_, nullptr, WNOHANG) != pid_) return false;
  pid_ = -1;
  return true;
}

ServeChild::~ServeChild() {
  if (pid_ > 0) {
    kill(pid_, SIGTERM);
    for (int i = 0; i < 200 && !Exited(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  std::error_code ec;
  fs::remove_all(dir_, ec);
}

std::string ServeChild::Log() const {
  std::ifstream in(log_);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace loom::cli
