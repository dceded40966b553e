// A `loom serve` process for end-to-end tests: started on a free port, its output in a log file,
// a Loom stub to its address, and killed with the test if the test dies first.
#ifndef LOOM_TESTS_E2E_SERVE_PROCESS_H_
#define LOOM_TESTS_E2E_SERVE_PROCESS_H_

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "loom/v1/loom.grpc.pb.h"

namespace loom::testing {

// True while `pid` runs (a zombie counts as gone).
bool ProcessExists(int64_t pid);
// Starts `argv` as a child that dies with the calling thread; its pid, or -1.
pid_t SpawnTiedChild(const std::vector<std::string>& argv);

class Server {
 public:
  // Starts `loom serve --port 0 --http-port any <args>` and waits up to a minute for its ready line (or exit),
  // calling `while_starting` with the log so far at every poll (an outside launcher's cue).
  explicit Server(const std::string& args,
                  const std::function<void(const std::string& log)>& while_starting = {});
  // SIGTERM, then SIGKILL after 10 s.
  ~Server();

  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  bool ready() const { return stub_ != nullptr; }
  const std::string& address() const { return address_; }
  // The OpenAI API's "host:port" ("" when the args turned it off).
  const std::string& http_address() const { return http_address_; }
  loom::v1::Loom::Stub& stub() { return *stub_; }
  pid_t pid() const { return pid_; }
  std::string Log() const;
  // True once the process exited (and was reaped) within `timeout`; its code in exit_code()
  // (128 + signal when killed).
  bool Exited(std::chrono::milliseconds timeout);
  int exit_code() const { return exit_code_; }

  loom::v1::GetStatusResponse Status();
  std::vector<int64_t> WorkerPids();

 private:
  pid_t pid_ = -1;
  std::string log_, address_, http_address_;
  bool exited_ = false;
  int exit_code_ = -1;
  std::unique_ptr<loom::v1::Loom::Stub> stub_;
};

// A greedy request for `max_tokens` new tokens past eos, from prompt ids or prompt text.
loom::v1::GenerateRequest IdsRequest(const std::vector<int32_t>& prompt, int max_tokens);
loom::v1::GenerateRequest TextRequest(const std::string& prompt, int max_tokens);

// Everything one Generate stream carried.
struct Streamed {
  std::vector<int32_t> ids;
  std::string text;
  std::string finish_reason;
  loom::v1::Usage usage;
  grpc::Status status;
  std::vector<uint64_t> versions;  // each message's weight version
  std::vector<size_t> sizes;       // each message's token count
  size_t messages() const { return versions.size(); }
};
// Reads a whole stream (deadline two minutes), calling `on_message` after every message.
Streamed Generate(loom::v1::Loom::Stub& stub, const loom::v1::GenerateRequest& request,
                  const std::function<void()>& on_message = {});

// A collective call through the Loom service and each rank's result (in rank order).
struct CallResult {
  grpc::Status status;
  std::vector<nlohmann::json> ranks;
};
CallResult Call(Server& server, const std::string& method,
                const nlohmann::json& args = nlohmann::json::object());

}  // namespace loom::testing

#endif  // LOOM_TESTS_E2E_SERVE_PROCESS_H_
