// A `loom serve` started by a tool (the benchmarks, the soak) as its child process.
#ifndef LOOM_TOOLS_SERVE_CHILD_H_
#define LOOM_TOOLS_SERVE_CHILD_H_

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace loom::cli {

// The directory of the running executable (the build's tools/ directory for the tools).
std::filesystem::path SelfDir();

// A `loom serve` child process: its output goes to a log file in a fresh temporary directory, it
// dies with this process (PR_SET_PDEATHSIG), and it gets SIGTERM (then SIGKILL after 10 s) when
// this object goes away.
class ServeChild {
 public:
  struct Options {
    std::vector<std::string> argv;    // argv[0] is the `loom` binary
    std::string name = "loom-serve";  // the temporary directory's prefix
    bool require_http = false;        // fail when the server starts without its HTTP API
    std::chrono::seconds ready_timeout{300};
  };
  // Starts the process and waits for its "listening" and "ready" lines; FailedPrecondition with
  // the log when it exits first, DeadlineExceeded with the log after `ready_timeout`.
  static absl::StatusOr<std::unique_ptr<ServeChild>> Start(Options options);
  ~ServeChild();

  ServeChild(const ServeChild&) = delete;
  ServeChild& operator=(const ServeChild&) = delete;

  std::string Log() const;
  pid_t pid() const { return pid_; }
  const std::string& address() const { return address_; }            // gRPC HOST:PORT
  const std::string& http_address() const { return http_address_; }  // "" without HTTP
  // True (and reaped) when the process has exited.
  bool Exited();

 private:
  explicit ServeChild(std::string dir) : dir_(dir), log_(dir + "/serve.log") {}
  std::string dir_, log_, address_, http_address_;
  pid_t pid_ = -1;
};

}  // namespace loom::cli

#endif  // LOOM_TOOLS_SERVE_CHILD_H_
