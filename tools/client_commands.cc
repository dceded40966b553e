// `loom rpc`, `loom status` and `loom stop`: verbs against a running `loom serve`.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "tools/commands.h"
#include "tools/server_client.h"

namespace loom::cli {
namespace {

std::vector<FlagSpec> WithHelp(std::vector<FlagSpec> specs) {
  specs.push_back({"help", true, "show this help", ""});
  return specs;
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
  LOOM_RETURN_IF_ERROR(FromGrpc(stub->CollectiveRpc(&context, request, &response), Address(flags)));
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
  std::printf("model %s, tp=%d, %lld KV blocks, %d running, %d waiting\n", s.model().c_str(),
              s.tensor_parallel_size(), static_cast<long long>(s.num_kv_blocks()),
              s.running_requests(), s.waiting_requests());
  for (const loom::v1::RankStatus& r : s.ranks()) {
    std::printf("rank %d: %s, pid %lld, %s, %s%s%s\n", r.rank(), r.state().c_str(),
                static_cast<long long>(r.pid()), r.device().c_str(), r.address().c_str(),
                r.error().empty() ? "" : ": ", r.error().c_str());
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
