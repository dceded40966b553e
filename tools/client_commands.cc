// `loom rpc`, `loom status` and `loom stop`: verbs against a running `loom serve`.
#include <atomic>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status.h"
#include "tools/commands.h"
#include "tools/load_progress.h"
#include "tools/server_client.h"

namespace loom::cli {
namespace {

std::vector<FlagSpec> WithHelp(std::vector<FlagSpec> specs) {
  specs.push_back({"help", true, "show this help", ""});
  return specs;
}

// Polls the server's status until `done`, printing the ranks that are loading.
void ShowLoadProgress(loom::v1::Loom::Stub& stub, const std::atomic<bool>& done) {
  LoadProgressPrinter printer(stderr);
  bool shown = false;
  while (!done.load()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
    loom::v1::GetStatusResponse s;
    if (!stub.GetStatus(&context, loom::v1::GetStatusRequest(), &s).ok() || done.load()) continue;
    std::vector<RankLoad> ranks;
    bool loading = false;
    for (const loom::v1::RankStatus& r : s.ranks()) {
      ranks.push_back({r.rank(), r.weight_state(), r.load_bytes_done(), r.load_bytes_total()});
      loading = loading || r.weight_state() == "loading" || r.weight_state() == "staging";
    }
    if (loading || shown) printer.Update(ranks);
    shown = shown || loading;
  }
}

absl::Status Rpc(const Flags& flags) {
  const std::vector<std::string>& args = flags.positional();
  if (args.empty() || args.size() > 2) {
    return absl::InvalidArgumentError("usage: loom rpc METHOD [JSON]");
  }
  loom::v1::CollectiveRpcRequest request;
  request.set_method(args[0]);
  if (args.size() == 2) {
    if (!nlohmann::json::accept(args[1])) {
      return absl::InvalidArgumentError(
          absl::StrCat("the arguments are not valid JSON: ", args[1]));
    }
    request.set_args_json(args[1]);
  }
  LOOM_ASSIGN_OR_RETURN(double rpc_timeout, flags.Double("rpc-timeout", 0));
  if (rpc_timeout < 0) return absl::InvalidArgumentError("--rpc-timeout must not be negative");
  request.set_timeout_ms(static_cast<int64_t>(rpc_timeout * 1000));
  if (flags.Has("ranks")) {
    LOOM_ASSIGN_OR_RETURN(std::vector<int64_t> ranks,
                          ParseIntList(flags.String("ranks"), "--ranks"));
    for (int64_t r : ranks) request.add_ranks(static_cast<int32_t>(r));
  }
  LOOM_ASSIGN_OR_RETURN(std::unique_ptr<loom::v1::Loom::Stub> stub, ConnectToServer(flags));
  grpc::ClientContext context;
  loom::v1::CollectiveRpcResponse response;
  grpc::Status status;
  {
    // Loads show each rank's progress on stderr while the call runs.
    const bool loads = args[0] == "reload_weights" || args[0] == "stage_weights";
    std::atomic<bool> done{false};
    std::thread progress;
    if (loads) {
      progress = std::thread([&] { ShowLoadProgress(*stub, done); });
    }
    status = stub->CollectiveRpc(&context, request, &response);
    done = true;
    if (progress.joinable()) progress.join();
  }
  LOOM_RETURN_IF_ERROR(FromGrpc(status, Address(flags)));
  for (const loom::v1::RankResult& r : response.results()) {
    if (!r.error().empty()) {
      std::printf("rank %d: error: %s\n", r.rank(), r.error().c_str());
    } else {
      std::printf("rank %d: %s\n", r.rank(), r.result_json().c_str());
    }
  }
  return absl::OkStatus();
}

absl::Status Status(const Flags& flags) {
  LOOM_ASSIGN_OR_RETURN(std::unique_ptr<loom::v1::Loom::Stub> stub, ConnectToServer(flags));
  grpc::ClientContext context;
  loom::v1::GetStatusResponse s;
  LOOM_RETURN_IF_ERROR(
      FromGrpc(stub->GetStatus(&context, loom::v1::GetStatusRequest(), &s), Address(flags)));
  std::string eos;
  for (int64_t id : s.eos_token_ids()) absl::StrAppend(&eos, eos.empty() ? "" : ",", id);
  std::printf("model %s, tp=%d, max_model_len %lld, eos [%s], default max_tokens %lld\n",
              s.model().c_str(), s.tensor_parallel_size(),
              static_cast<long long>(s.max_model_len()), eos.c_str(),
              static_cast<long long>(s.default_max_tokens()));
  std::printf("tokenizer: %s\n",
              s.tokenizer().empty() ? "none (prompt ids only)" : s.tokenizer().c_str());
  std::printf("requests: %d running, %d waiting; %llu steps; finished: %lld stop, %lld length, "
              "%lld abort, %lld error\n",
              s.running_requests(), s.waiting_requests(),
              static_cast<unsigned long long>(s.steps()),
              static_cast<long long>(s.finished().stop()),
              static_cast<long long>(s.finished().length()),
              static_cast<long long>(s.finished().abort()),
              static_cast<long long>(s.finished().error()));
  if (s.sleep_level() > 0) {
    std::printf("asleep: level %d (requests refused until wake_up)\n", s.sleep_level());
  }
  if (s.healing()) std::printf("healing: restarting the ranks (requests wait)\n");
  if (s.restarts() > 0 || !s.last_failure().empty()) {
    std::printf("restarts: %lld; last failure: %s\n", static_cast<long long>(s.restarts()),
                s.last_failure().c_str());
  }
  std::printf("KV blocks: %lld free of %lld\n", static_cast<long long>(s.num_free_kv_blocks()),
              static_cast<long long>(s.num_kv_blocks()));
  std::printf("weights: serving version %llu, staged %s, kept for rollback %s\n",
              static_cast<unsigned long long>(s.serving_weight_version()),
              s.staged_weight_version() ? std::to_string(s.staged_weight_version()).c_str()
                                        : "none",
              s.previous_weight_version() ? std::to_string(s.previous_weight_version()).c_str()
                                          : "none");
  for (const loom::v1::RankStatus& r : s.ranks()) {
    std::printf("rank %d: %s, pid %lld, %s, %s%s%s\n", r.rank(), r.state().c_str(),
                static_cast<long long>(r.pid()), r.device().c_str(), r.address().c_str(),
                r.error().empty() ? "" : ": ", r.error().c_str());
    std::printf("  weights %s: version %llu%s, %s from %s%s\n", r.weight_state().c_str(),
                static_cast<unsigned long long>(r.serving_version()),
                absl::StrCat(r.staged_version() ? absl::StrCat(" (staged ", r.staged_version(), ")")
                                                : "",
                             r.previous_version()
                                 ? absl::StrFormat(" (kept %llu, %.2f GB)",
                                                   static_cast<unsigned long long>(
                                                       r.previous_version()),
                                                   r.previous_bytes() / 1e9)
                                 : "")
                    .c_str(),
                r.load_format().c_str(), r.weight_source().c_str(),
                r.dummy() ? " [dummy]" : "");
    if (!r.memory().empty()) std::printf("  memory: %s\n", r.memory().c_str());
  }
  return absl::OkStatus();
}

absl::Status Stop(const Flags& flags) {
  LOOM_ASSIGN_OR_RETURN(std::unique_ptr<loom::v1::Loom::Stub> stub, ConnectToServer(flags));
  grpc::ClientContext context;
  loom::v1::ShutdownResponse response;
  LOOM_RETURN_IF_ERROR(
      FromGrpc(stub->Shutdown(&context, loom::v1::ShutdownRequest(), &response), Address(flags)));
  std::printf("loom stop: the server at %s is stopping\n", Address(flags).c_str());
  return absl::OkStatus();
}

}  // namespace

int RpcCommand(int argc, char** argv) {
  std::vector<FlagSpec> specs = ClientFlagSpecs();
  specs.push_back({"rpc-timeout", false, "deadline in seconds (0 = the server's default)", "0"});
  specs.push_back({"ranks", false, "comma-separated ranks (default: all)", ""});
  return RunVerb("rpc", argc, argv, WithHelp(specs),
                 "usage: loom rpc METHOD [JSON] [--address HOST:PORT]\n\n"
                 "Calls a worker method on every rank of a running server and prints each rank's\n"
                 "result (e.g. `loom rpc describe`, `loom rpc check_health`).\n",
                 Rpc);
}

int StatusCommand(int argc, char** argv) {
  return RunVerb("status", argc, argv, WithHelp(ClientFlagSpecs()),
                 "usage: loom status [--address HOST:PORT]\n\n"
                 "Prints a running server's model, requests and the state of every rank.\n",
                 Status);
}

int StopCommand(int argc, char** argv) {
  return RunVerb("stop", argc, argv, WithHelp(ClientFlagSpecs()),
                 "usage: loom stop [--address HOST:PORT]\n\n"
                 "Asks a running server to stop its workers and exit.\n",
                 Stop);
}

}  // namespace loom::cli
