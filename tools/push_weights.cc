// `loom-push-weights`: the trainer side of a weight update (and the trainer of the tests).
// It joins a communicator group with every rank of a running server, broadcasts the full named
// tensors of a model directory's safetensors to them, and commits the new version:
//
//   1. GetStatus: the TP size, and the controller's store the group meets in.
//   2. init_weight_update_group {group, world_size: tp + 1} on the server while this process
//      joins the same Gloo group as rank 0.
//   3. update_weights_from_distributed {group, tensors: [{name, dtype, shape}]} while this
//      process takes part in the ranks' check (one all-reduce) and then broadcasts each tensor;
//      every rank keeps its slice in a staged set.
//   4. commit_weights (unless --no-commit), then destroy_weight_update_group.
#include <cstdio>
#include <unistd.h>

#include <algorithm>
#include <future>
#include <random>
#include <nlohmann/json.hpp>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/flags.h"
#include "common/model_config.h"
#include "common/safetensors.h"
#include "common/status.h"
#include "proto/cluster_channel.h"
#include "proto/grpc_status.h"
#include "tools/server_client.h"
#include "common/device.h"
#include "kernels/execution_context.h"
#include "worker/comm/gloo_communicator.h"
#include "worker/comm/host_staged_communicator.h"
#include "worker/comm/nccl_group.h"
#include "worker/controller_store.h"

namespace loom::cli {
namespace {

absl::StatusOr<nlohmann::json> CallAll(loom::v1::Loom::Stub& stub, const std::string& method,
                                       const nlohmann::json& args, int64_t timeout_ms) {
  grpc::ClientContext context;
  loom::v1::CollectiveRpcRequest request;
  request.set_method(method);
  request.set_args_json(args.dump());
  request.set_timeout_ms(timeout_ms);
  loom::v1::CollectiveRpcResponse response;
  LOOM_RETURN_IF_ERROR(FromGrpcStatus(stub.CollectiveRpc(&context, request, &response)));
  nlohmann::json out = nlohmann::json::array();
  for (const auto& r : response.results()) {
    out.push_back({{"rank", r.rank()}, {"result", nlohmann::json::parse(r.result_json(), nullptr, false)}});
  }
  return out;
}

// Steps 3 and 4, once the group is joined.
absl::Status Push(loom::v1::Loom::Stub& stub, Communicator& comm, const std::string& group,
                  const nlohmann::json& tensors, const Checkpoint& ckpt,
                  const std::vector<std::string>& names, const Flags& flags, int64_t timeout_ms) {
  const auto start = std::chrono::steady_clock::now();
  auto pushed = std::async(std::launch::async, [&] {
    return CallAll(stub, "update_weights_from_distributed",
                   {{"group", group}, {"tensors", tensors}}, timeout_ms);
  });
  // The ranks' check of the list: a non-zero sum means some rank refused it and nothing moves.
  Tensor flag = Tensor::Empty(DType::kF32, {1});
  absl::Status sent = comm.AllReduceSum(flag);
  int64_t bytes = 0;
  if (sent.ok() && flag.data<float>()[0] == 0.0f) {
    for (const std::string& name : names) {
      absl::StatusOr<Tensor> t = ckpt.Get(name);
      if (!t.ok()) {
        sent = t.status();
        break;
      }
      Tensor copy = t->Clone();  // the mapping is read-only; the collective wants a buffer
      sent = comm.Broadcast(copy, 0);
      if (!sent.ok()) break;
      bytes += static_cast<int64_t>(copy.nbytes());
    }
  }
  absl::StatusOr<nlohmann::json> result = pushed.get();
  LOOM_RETURN_IF_ERROR(result.status());
  LOOM_RETURN_IF_ERROR(sent);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const uint64_t version = (*result)[0]["result"].value("staged_version", uint64_t{0});
  std::printf("loom-push-weights: pushed %zu tensors, %.1f MB in %.3f s (%.1f MB/s); staged "
              "version %llu\n",
              names.size(), bytes / 1e6, seconds, seconds > 0 ? bytes / seconds / 1e6 : 0.0,
              static_cast<unsigned long long>(version));
  if (flags.Has("no-commit")) return absl::OkStatus();
  const std::string policy = flags.String("policy", "recompute");
  LOOM_RETURN_IF_ERROR(CallAll(stub, "commit_weights", {{"policy", policy}}, timeout_ms).status());
  std::printf("loom-push-weights: committed version %llu\n",
              static_cast<unsigned long long>(version));
  return absl::OkStatus();
}

absl::Status Run(const Flags& flags) {
  const std::string model = flags.String("model", "");
  if (model.empty()) return absl::InvalidArgumentError("--model is required");
  const std::string group = flags.String("group", "trainer");
  LOOM_ASSIGN_OR_RETURN(int64_t timeout_s, flags.Int("rpc-timeout", 600));
  const int64_t timeout_ms = timeout_s * 1000;
  // NCCL: this process is rank 0 on a GPU of its own; the tensors, read on the host, are staged
  // through it. The GPU is bound before the server is asked anything, so a missing one changes
  // nothing there.
  const std::string backend = flags.String("backend", "gloo");
  if (backend != "gloo" && backend != "nccl") {
    return absl::InvalidArgumentError(
        absl::StrCat("--backend must be gloo or nccl, not \"", backend, "\""));
  }
  std::unique_ptr<kernels::ExecutionContext> gpu;
  if (backend == "nccl") {
    LOOM_ASSIGN_OR_RETURN(const DeviceSpec spec, ParseDeviceSpec(flags.String("device", "cuda:0")));
    if (spec.kind != DeviceKind::kCuda) {
      return absl::InvalidArgumentError("--backend nccl needs --device cuda or cuda:K");
    }
    LOOM_ASSIGN_OR_RETURN(gpu,
                          kernels::CreateExecutionContext(Device::Cuda(std::max(spec.index, 0))));
    LOOM_RETURN_IF_ERROR(gpu->BindThread());  // the staging copies run on this thread
  }
  LOOM_ASSIGN_OR_RETURN(ModelConfig config, ModelConfig::FromModelDir(model));
  LOOM_ASSIGN_OR_RETURN(std::unique_ptr<Checkpoint> ckpt, Checkpoint::Open(model));
  nlohmann::json tensors = nlohmann::json::array();
  std::vector<std::string> names;
  for (const std::string& name : ckpt->Names()) {
    if (absl::EndsWith(name, "rotary_emb.inv_freq")) continue;
    if (name == "lm_head.weight" && config.tie_word_embeddings) continue;
    LOOM_ASSIGN_OR_RETURN(Tensor t, ckpt->Get(name));
    tensors.push_back({{"name", name}, {"dtype", DTypeName(t.dtype())}, {"shape", t.shape()}});
    names.push_back(name);
  }

  LOOM_ASSIGN_OR_RETURN(std::unique_ptr<loom::v1::Loom::Stub> stub, ConnectToServer(flags));
  loom::v1::GetStatusResponse status;
  {
    grpc::ClientContext context;
    LOOM_RETURN_IF_ERROR(FromGrpc(stub->GetStatus(&context, {}, &status), Address(flags)));
  }
  const int64_t world = status.tensor_parallel_size() + 1;
  // The rendezvous store is the cluster's: it takes calls with the cluster secret only.
  LOOM_ASSIGN_OR_RETURN(const std::string secret,
                        ClusterSecretFrom(flags.String("cluster-secret-file")));
  auto controller =
      loom::v1::Controller::NewStub(ClusterChannel(status.controller_address(), secret));
  GlooOptions gloo;
  gloo.rank = 0;
  gloo.world_size = world;
  gloo.store = std::make_shared<ControllerStore>(std::move(controller), status.session_id(),
                                                 std::chrono::milliseconds(timeout_ms));
  // A fresh rendezvous id per join: the store never forgets an earlier group's addresses.
  std::random_device entropy;
  const std::string rendezvous = absl::StrCat(entropy(), "-", entropy(), "-", getpid());
  gloo.prefix = absl::StrCat("update/", group, "/", rendezvous);
  gloo.hostname = flags.String("host", "127.0.0.1");
  gloo.timeout = std::chrono::milliseconds(timeout_ms);

  // The server's call returns once every rank joined, which needs us in the group too.
  auto joined = std::async(std::launch::async, [&] {
    return CallAll(*stub, "init_weight_update_group",
                   {{"group", group},
                    {"world_size", world},
                    {"rendezvous_id", rendezvous},
                    {"backend", backend}},
                   timeout_ms);
  });
  absl::StatusOr<std::unique_ptr<Communicator>> comm;
  if (gpu == nullptr) {
    comm = GlooCommunicator::Create(gloo);
  } else {
    NcclGroupOptions nccl{gloo.prefix, 0, static_cast<int>(world), gpu->device().index,
                          gloo.timeout};
    absl::StatusOr<std::unique_ptr<Communicator>> inner = JoinNcclGroup(*gloo.store, nccl);
    if (inner.ok()) {
      comm = std::make_unique<HostStagedCommunicator>(*std::move(inner), gpu.get());
    } else {
      comm = inner.status();
    }
  }
  LOOM_RETURN_IF_ERROR(joined.get().status());
  LOOM_RETURN_IF_ERROR(comm.status());

  // From here on the group exists on every rank: leave it destroyed whatever happens.
  absl::Status pushed = Push(*stub, **comm, group, tensors, *ckpt, names, flags, timeout_ms);
  comm->reset();
  absl::Status destroyed =
      CallAll(*stub, "destroy_weight_update_group", {{"group", group}}, timeout_ms).status();
  return pushed.ok() ? destroyed : pushed;
}

}  // namespace
}  // namespace loom::cli

int main(int argc, char** argv) {
  std::vector<loom::cli::FlagSpec> specs = loom::cli::ClientFlagSpecs();
  std::vector<loom::cli::FlagSpec> more = {
      {"model", false, "model directory whose safetensors are pushed", ""},
      {"group", false, "name of the weight update group", "trainer"},
      {"policy", false, "what in-flight sequences do at the commit: recompute or abort",
       "recompute"},
      {"no-commit", true, "leave the pushed weights staged", ""},
      {"host", false, "address this process listens on for the group", "127.0.0.1"},
      {"backend", false,
       "the group's transport: gloo (host memory) or nccl (this process on --device, the ranks "
       "on their GPUs)",
       "gloo"},
      {"device", false, "--backend nccl: the GPU this process uses", "cuda:0"},
      {"rpc-timeout", false, "deadline of each call, in seconds", "600"},
      {"cluster-secret-file", false, "the cluster's secret, when the server has one",
       "$LOOM_CLUSTER_SECRET"},
      {"help", true, "show this help", ""},
  };
  specs.insert(specs.end(), more.begin(), more.end());
  return loom::cli::RunVerb(
      "loom-push-weights", argc, argv, specs,
      "usage: loom-push-weights --model DIR [--address HOST:PORT] [--group NAME] "
      "[--no-commit]\n\n"
      "Pushes DIR's weights to every rank of a running server through a communicator group\n"
      "(the trainer side of update_weights_from_distributed) and commits them.\n",
      loom::cli::Run, /*first_arg=*/1);
}
