#include "worker/weight_methods.h"

#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/engine_config_json.h"
#include "common/engine_config_patch.h"
#include "common/json_fields.h"
#include "common/status.h"
#include "worker/comm/gloo_communicator.h"
#include "worker/comm/host_staged_communicator.h"
#include "worker/comm/nccl_group.h"
#include "worker/loader/weight_load.h"

namespace loom {
namespace {

using nlohmann::json;

// A collective method's args: JSON the controller wrote, so strict (null is no value).
JsonPlace Args() { return JsonPlace{.null_is_absent = false, .integral_floats = false}; }

absl::StatusOr<uint64_t> VersionArg(const json& args) {
  LOOM_ASSIGN_OR_RETURN(const uint64_t version, JsonUint(args, "version", Args(), 0));
  if (version == 0) return absl::InvalidArgumentError("version: expected a positive integer");
  return version;
}

absl::StatusOr<std::string> StringArg(const json& args, const char* key) {
  LOOM_ASSIGN_OR_RETURN(std::string value, JsonString(args, key, Args(), ""));
  if (value.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(key, ": expected a non-empty string"));
  }
  return value;
}

}  // namespace

WeightMethods::WeightMethods(const WeightMethodsOptions& options, const EngineConfig& config,
                             WeightManager* weights, Decoder* serving)
    : options_(options), weights_(weights), serving_(serving), config_(config) {}

EngineConfig WeightMethods::config() const {
  absl::MutexLock lock(&mu_);
  return config_;
}

absl::Status WeightMethods::Register(MethodRegistry& registry,
                                     std::function<WeightMethods*()> target) {
  using Member = absl::StatusOr<json> (WeightMethods::*)(const json&);
  // Every one changes the weights or the config, or writes files: all need the admin key. The
  // args that name a directory are confined to the server's allowed roots; the pointers are
  // into the args a client's CollectiveRpc passes (update_config's are the patch itself, which
  // the controller hands the ranks as {"patch": ...}: both shapes are named).
  struct Method {
    const char* name;
    Member member;
    std::vector<std::string> path_args;
  };
  const Method methods[] = {
      {"update_config",
       &WeightMethods::UpdateConfig,
       {"/load_config/model", "/patch/load_config/model"}},
      {"reload_weights", &WeightMethods::ReloadWeights, {}},
      {"stage_weights", &WeightMethods::StageWeights, {"/source/model"}},
      {"commit_weights", &WeightMethods::CommitWeights, {}},
      {"abort_staged_weights", &WeightMethods::AbortStagedWeights, {}},
      {"rollback_weights", &WeightMethods::RollbackWeights, {}},
      {"release_previous_weights", &WeightMethods::ReleasePreviousWeights, {}},
      {"save_sharded_state", &WeightMethods::SaveShardedState, {"/path"}},
      {"init_weight_update_group", &WeightMethods::InitWeightUpdateGroup, {}},
      {"update_weights_from_distributed", &WeightMethods::UpdateWeightsFromDistributed, {}},
      {"destroy_weight_update_group", &WeightMethods::DestroyWeightUpdateGroup, {}},
  };
  for (const auto& [name, member, path_args] : methods) {
    LOOM_RETURN_IF_ERROR(registry.Register(
        name, [target, member, name = std::string(name)](const json& args) -> absl::StatusOr<json> {
          WeightMethods* m = target();
          if (m == nullptr) {
            return absl::FailedPreconditionError(
                absl::StrCat(name, " needs an initialised worker"));
          }
          return (m->*member)(args);
        },
        MethodSpec{.admin = true, .path_args = path_args}));
  }
  return absl::OkStatus();
}

absl::StatusOr<EngineConfig> WeightMethods::Patched(const EngineConfig& base,
                                                    const json& patch) const {
  LOOM_ASSIGN_OR_RETURN(EngineConfig next, ApplyConfigPatch(base, patch.dump()));
  LOOM_ASSIGN_OR_RETURN(ModelConfig model, ModelConfig::FromModelDir(next.load.model));
  LOOM_RETURN_IF_ERROR(CheckSameModel(serving_->config(), model));
  return next;
}

absl::StatusOr<json> WeightMethods::UpdateConfig(const json& args) {
  if (!args.is_object() || !args.contains("patch")) {
    return absl::InvalidArgumentError("update_config: expected {\"patch\": {...}}");
  }
  const bool dry_run = args.value("dry_run", false);
  absl::MutexLock lock(&mu_);
  LOOM_ASSIGN_OR_RETURN(EngineConfig next, Patched(config_, args["patch"]));
  if (!dry_run) config_ = next;
  return json{{"applied", !dry_run}, {"config", json::parse(EngineConfigToJson(next))}};
}

absl::StatusOr<json> WeightMethods::ReloadWeights(const json& args) {
  LOOM_ASSIGN_OR_RETURN(uint64_t version, VersionArg(args));
  const LoadConfig load = config().load;
  LOOM_ASSIGN_OR_RETURN(json report, weights_->ReloadInPlace(load, version));
  report["mode"] = "in_place";
  return report;
}

absl::StatusOr<json> WeightMethods::StageWeights(const json& args) {
  LOOM_ASSIGN_OR_RETURN(uint64_t version, VersionArg(args));
  EngineConfig staged = config();
  if (args.contains("source") && !args["source"].is_null()) {
    // The source is a patch of the load config, validated like update_config's.
    LOOM_ASSIGN_OR_RETURN(staged, Patched(staged, json{{"load_config", args["source"]}}));
  }
  LOOM_ASSIGN_OR_RETURN(const bool release, JsonBool(args, "release_previous", Args(), false));
  LOOM_ASSIGN_OR_RETURN(json report, weights_->Stage(staged.load, version, release));
  absl::MutexLock lock(&mu_);
  staged_load_ = staged.load;
  return report;
}

absl::StatusOr<json> WeightMethods::CommitWeights(const json& args) {
  LOOM_ASSIGN_OR_RETURN(uint64_t version, VersionArg(args));
  const json staged = weights_->Describe()["staged"];
  const bool from_load = staged.is_object() && staged.value("load_format", "") != "distributed";
  LOOM_ASSIGN_OR_RETURN(const bool keep, JsonBool(args, "keep_previous", Args(), false));
  LOOM_ASSIGN_OR_RETURN(json report, weights_->Commit(version, keep));
  // Later reloads read what now serves; a rollback brings the replaced set's config back.
  absl::MutexLock lock(&mu_);
  if (keep) previous_load_ = config_.load;
  if (from_load) config_.load = staged_load_;
  return report;
}

absl::StatusOr<json> WeightMethods::RollbackWeights(const json& args) {
  LOOM_ASSIGN_OR_RETURN(uint64_t version, VersionArg(args));
  LOOM_ASSIGN_OR_RETURN(json report, weights_->Rollback(version));
  absl::MutexLock lock(&mu_);
  std::swap(config_.load, previous_load_);
  return report;
}

absl::StatusOr<json> WeightMethods::ReleasePreviousWeights(const json&) {
  return weights_->ReleasePrevious();
}

absl::StatusOr<json> WeightMethods::AbortStagedWeights(const json&) {
  return weights_->AbortStaged();
}

absl::StatusOr<json> WeightMethods::SaveShardedState(const json& args) {
  LOOM_ASSIGN_OR_RETURN(std::string path, StringArg(args, "path"));
  LOOM_ASSIGN_OR_RETURN(const int64_t max_file_size, JsonInt(args, "max_file_size", Args(), 0));
  if (max_file_size < 0) {
    return absl::InvalidArgumentError("max_file_size: expected a non-negative integer");
  }
  const std::string model_dir = config().load.model;
  return weights_->SaveShardedState(path, max_file_size, options_.rank == 0, model_dir);
}

absl::StatusOr<Communicator*> WeightMethods::Group(const std::string& name) {
  absl::MutexLock lock(&mu_);
  auto it = groups_.find(name);
  if (it == groups_.end()) {
    return absl::NotFoundError(absl::StrCat("no weight update group \"", name,
                                            "\" (call init_weight_update_group first)"));
  }
  return it->second.get();
}

absl::StatusOr<json> WeightMethods::InitWeightUpdateGroup(const json& args) {
  LOOM_ASSIGN_OR_RETURN(std::string name, StringArg(args, "group"));
  // Store keys are never deleted, so every join needs a rendezvous id of its own: a second
  // group under an old id would find the first one's (dead) addresses.
  LOOM_ASSIGN_OR_RETURN(std::string rendezvous, StringArg(args, "rendezvous_id"));
  const int64_t world = args.is_object() ? args.value("world_size", int64_t{0}) : 0;
  if (world != options_.world_size + 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "\"world_size\": the update group is the trainer plus the ", options_.world_size,
        " ranks, so ", options_.world_size + 1));
  }
  if (options_.store == nullptr) {
    return absl::FailedPreconditionError("this worker has no rendezvous store");
  }
  {
    absl::MutexLock lock(&mu_);
    if (groups_.count(name)) {
      return absl::AlreadyExistsError(absl::StrCat("weight update group \"", name, "\" exists"));
    }
  }
  // Gloo between host memories, or NCCL between the trainer's GPU and the ranks' (the tensors
  // still arrive as host tensors, staged through the rank's device like every weight group's).
  LOOM_ASSIGN_OR_RETURN(const std::string backend, JsonString(args, "backend", Args(), "gloo"));
  const Device device = serving_->context().device();
  if (backend != "gloo" && backend != "nccl") {
    return absl::InvalidArgumentError(
        absl::StrCat("\"backend\": gloo or nccl, not \"", backend, "\""));
  }
  if (backend == "nccl" && device.is_cpu()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "\"backend\": nccl needs GPU ranks; rank ", options_.rank, " is on ", device.ToString(),
        " (use gloo)"));
  }
  const std::string prefix = absl::StrCat("update/", name, "/", rendezvous);
  std::unique_ptr<Communicator> comm;
  if (backend == "gloo") {
    GlooOptions gloo;
    gloo.rank = 1 + options_.rank;  // the trainer is rank 0
    gloo.world_size = world;
    gloo.store = options_.store;
    gloo.prefix = prefix;
    gloo.hostname = options_.hostname;
    gloo.timeout = options_.timeout;
    LOOM_ASSIGN_OR_RETURN(comm, GlooCommunicator::Create(gloo));
  } else {
    NcclGroupOptions nccl{prefix, 1 + options_.rank, static_cast<int>(world), device.index,
                          options_.timeout};
    LOOM_ASSIGN_OR_RETURN(std::unique_ptr<Communicator> inner,
                          JoinNcclGroup(*options_.store, nccl));
    comm = std::make_unique<HostStagedCommunicator>(std::move(inner), &serving_->context());
  }
  absl::MutexLock lock(&mu_);
  groups_[name] = std::move(comm);
  return json{{"group", name}, {"rank", 1 + options_.rank}, {"world_size", world},
              {"backend", backend}};
}

absl::StatusOr<json> WeightMethods::DestroyWeightUpdateGroup(const json& args) {
  LOOM_ASSIGN_OR_RETURN(std::string name, StringArg(args, "group"));
  absl::MutexLock lock(&mu_);
  if (groups_.erase(name) == 0) {
    return absl::NotFoundError(absl::StrCat("no weight update group \"", name, "\""));
  }
  return json{{"destroyed", name}};
}

absl::StatusOr<json> WeightMethods::UpdateWeightsFromDistributed(const json& args) {
  LOOM_ASSIGN_OR_RETURN(std::string name, StringArg(args, "group"));
  LOOM_ASSIGN_OR_RETURN(uint64_t version, VersionArg(args));
  LOOM_ASSIGN_OR_RETURN(Communicator * comm, Group(name));
  // Check the whole list before any data moves; the trainer and every rank then agree through
  // one all-reduce, so a bad list stops everyone before the first broadcast.
  struct Incoming {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
  };
  std::vector<Incoming> incoming;
  absl::Status mine;
  std::map<std::string, std::vector<int64_t>> known;
  for (const ParameterInfo& p : serving_->Parameters()) known[p.name] = p.shape;
  if (!args.contains("tensors") || !args["tensors"].is_array() || args["tensors"].empty()) {
    mine = absl::InvalidArgumentError("\"tensors\": expected a non-empty array");
  } else {
    std::set<std::string> seen;
    for (const json& t : args["tensors"]) {
      Incoming in;
      absl::StatusOr<DType> dtype = absl::InvalidArgumentError("missing dtype");
      if (t.is_object() && t.contains("name") && t["name"].is_string()) in.name = t["name"];
      if (t.is_object() && t.contains("dtype") && t["dtype"].is_string()) {
        dtype = ParseFloatDTypeName(t["dtype"].get<std::string>());
      }
      if (t.is_object() && t.contains("shape") && t["shape"].is_array()) {
        for (const json& d : t["shape"]) in.shape.push_back(d.is_number_integer() ? d.get<int64_t>() : -1);
      }
      auto it = known.find(in.name);
      if (it == known.end()) {
        mine = absl::InvalidArgumentError(absl::StrCat("tensor \"", in.name, "\" is not a parameter of ",
                                                       serving_->config().architecture));
      } else if (it->second != in.shape) {
        mine = absl::InvalidArgumentError(absl::StrCat(in.name, ": expected shape ",
                                                       ShapeString(it->second), ", got ",
                                                       ShapeString(in.shape)));
      } else if (!dtype.ok()) {
        mine = absl::InvalidArgumentError(absl::StrCat(in.name, ": ", dtype.status().message()));
      } else if (!seen.insert(in.name).second) {
        mine = absl::InvalidArgumentError(absl::StrCat(in.name, " is listed twice"));
      }
      if (!mine.ok()) break;
      in.dtype = *dtype;
      incoming.push_back(std::move(in));
    }
  }
  Tensor flag = Tensor::Empty(DType::kF32, {1});
  flag.data<float>()[0] = mine.ok() ? 0.0f : 1.0f;
  LOOM_RETURN_IF_ERROR(comm->AllReduceSum(flag));
  if (!mine.ok()) return mine;
  if (flag.data<float>()[0] != 0.0f) {
    return absl::AbortedError("update_weights_from_distributed stopped: another rank rejected the list");
  }
  LOOM_ASSIGN_OR_RETURN(Decoder * shadow,
                        weights_->BeginPartialStage(version, absl::StrCat("update group ", name)));
  const auto start = std::chrono::steady_clock::now();
  int64_t bytes = 0;
  absl::Status status;
  for (const Incoming& in : incoming) {
    Tensor full = Tensor::Empty(in.dtype, in.shape);
    status = comm->Broadcast(full, 0);
    if (status.ok()) status = shadow->LoadWeight(in.name, full);
    if (!status.ok()) break;
    bytes += static_cast<int64_t>(full.nbytes());
  }
  weights_->FinishPartialStage(status.ok());
  LOOM_RETURN_IF_ERROR(status);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return json{{"staged_version", version}, {"tensors", incoming.size()},
              {"bytes_received", bytes}, {"seconds", seconds}};
}

}  // namespace loom
