#include "tests/e2e/serve_process.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "tests/test_paths.h"

extern char** environ;

namespace loom::testing {

using Clock = std::chrono::steady_clock;

bool ProcessExists(int64_t pid) {
  std::ifstream stat(absl::StrCat("/proc/", pid, "/stat"));
  std::string line;
  if (!std::getline(stat, line)) return false;
  const size_t paren = line.rfind(')');
  return paren == std::string::npos || line.substr(paren + 2, 1) != "Z";
}

pid_t SpawnTiedChild(const std::vector<std::string>& args) {
  std::vector<char*> argv;
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    // The child dies with the test, even when the test crashes.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    execve(argv[0], argv.data(), environ);
    _exit(127);
  }
  return pid;
}

Server::Server(const std::string& args,
               const std::function<void(const std::string& log)>& while_starting) {
  log_ = MakeTempDir("loom-serve") + "/serve.log";
  // Through its main thread, the server's own workers die with it.
  pid_ = SpawnTiedChild({"/bin/sh", "-c",
                         absl::StrCat("exec ", BinaryDir(), "/tools/loom serve --port 0 --http-port any ",
                                      args,
                                      " >", log_, " 2>&1")});
  if (pid_ < 0) return;
  const auto deadline = Clock::now() + std::chrono::seconds(60);
  while (Clock::now() < deadline) {
    const std::string out = Log();
    const size_t at = out.find("listening on ");
    if (at != std::string::npos && out.find("ready:") != std::string::npos) {
      address_ = out.substr(at + 13, out.find('\n', at) - at - 13);
      const std::string api = "OpenAI API on http://";
      if (const size_t h = out.find(api); h != std::string::npos) {
        http_address_ = out.substr(h + api.size(), out.find("/v1", h) - h - api.size());
      }
      break;
    }
    if (while_starting) while_starting(out);
    if (Exited(std::chrono::milliseconds(0))) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (!address_.empty()) {
    stub_ =
        loom::v1::Loom::NewStub(grpc::CreateChannel(address_, grpc::InsecureChannelCredentials()));
  }
}

Server::~Server() {
  if (!exited_ && pid_ > 0) {
    kill(pid_, SIGTERM);
    if (!Exited(std::chrono::seconds(10))) {
      kill(pid_, SIGKILL);
      Exited(std::chrono::seconds(10));
    }
  }
}

std::string Server::Log() const {
  std::ifstream in(log_);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

bool Server::Exited(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (!exited_) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      exited_ = true;
      exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      break;
    }
    if (Clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return exited_;
}

loom::v1::GetStatusResponse Server::Status() {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  loom::v1::GetStatusResponse response;
  grpc::Status s = stub_->GetStatus(&context, loom::v1::GetStatusRequest(), &response);
  EXPECT_TRUE(s.ok()) << s.error_message();
  return response;
}

std::vector<int64_t> Server::WorkerPids() {
  const loom::v1::GetStatusResponse status = Status();
  std::vector<int64_t> pids;
  for (const auto& r : status.ranks()) pids.push_back(r.pid());
  return pids;
}

loom::v1::GenerateRequest IdsRequest(const std::vector<int32_t>& prompt, int max_tokens) {
  loom::v1::GenerateRequest request;
  request.mutable_prompt_ids()->Add(prompt.begin(), prompt.end());
  request.set_max_tokens(max_tokens);
  request.set_ignore_eos(true);
  return request;
}

loom::v1::GenerateRequest TextRequest(const std::string& prompt, int max_tokens) {
  loom::v1::GenerateRequest request;
  request.set_prompt(prompt);
  request.set_max_tokens(max_tokens);
  request.set_ignore_eos(true);
  return request;
}

Streamed Generate(loom::v1::Loom::Stub& stub, const loom::v1::GenerateRequest& request,
                  const std::function<void()>& on_message) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
  auto reader = stub.Generate(&context, request);
  Streamed out;
  loom::v1::GenerateResponse response;
  while (reader->Read(&response)) {
    out.ids.insert(out.ids.end(), response.token_ids().begin(), response.token_ids().end());
    out.text += response.text();
    out.versions.push_back(response.weight_version());
    out.sizes.push_back(response.token_ids_size());
    if (!response.finish_reason().empty()) {
      out.finish_reason = response.finish_reason();
      out.usage = response.usage();
    }
    if (on_message) on_message();
  }
  out.status = reader->Finish();
  return out;
}

CallResult Call(Server& server, const std::string& method, const nlohmann::json& args) {
  loom::v1::CollectiveRpcRequest request;
  request.set_method(method);
  request.set_args_json(args.dump());
  request.set_timeout_ms(120000);
  loom::v1::CollectiveRpcResponse response;
  grpc::ClientContext context;
  CallResult out;
  out.status = server.stub().CollectiveRpc(&context, request, &response);
  for (const auto& r : response.results()) {
    out.ranks.push_back(nlohmann::json::parse(r.result_json(), nullptr, false));
  }
  return out;
}

}  // namespace loom::testing
