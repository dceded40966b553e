#include "worker/rank.h"

#include <unistd.h>

#include <chrono>
#include <exception>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/device.h"
#include "common/model_config.h"
#include "common/status.h"
#include "kernels/execution_context.h"
#include "kernels/threading.h"
#include "worker/comm/device_ordered_communicator.h"
#include "worker/comm/gloo_communicator.h"
#include "worker/comm/shm_communicator.h"
#include "worker/comm/host_staged_communicator.h"
#include "worker/comm/nccl_group.h"
#include "worker/kv_cache_sizing.h"
#include "worker/process_memory.h"
#include "worker/loader/stage_pacer.h"
#include "worker/loader/weight_dtype.h"
#include "worker/step_proto.h"

namespace loom {

Rank::Rank(const RankOptions& options) : options_(options) {
  // Registration cannot fail here: the names are fixed and distinct.
  methods_
      .Register(
          "describe",
          [this](const nlohmann::json&) -> absl::StatusOr<nlohmann::json> { return Describe(); },
          ReadOnlyMethod())
      .IgnoreError();
  methods_
      .Register("check_health",
                [this](const nlohmann::json&) -> absl::StatusOr<nlohmann::json> {
                  absl::MutexLock lock(&mu_);
                  if (state_ == State::kFailed) {
                    return absl::UnavailableError(absl::StrCat("failed: ", error_));
                  }
                  return nlohmann::json{{"state", StateName(state_)}};
                },
                ReadOnlyMethod())
      .IgnoreError();
  methods_
      .Register("sleep",
                [this](const nlohmann::json& args) -> absl::StatusOr<nlohmann::json> {
                  return Sleep(args);
                })
      .IgnoreError();
  methods_
      .Register("wake_up",
                [this](const nlohmann::json& args) -> absl::StatusOr<nlohmann::json> {
                  return WakeUp(args);
                })
      .IgnoreError();
  WeightMethods::Register(methods_, [this]() -> WeightMethods* {
    absl::MutexLock lock(&mu_);
    return weight_methods_.get();
  }).IgnoreError();
  if (options_.enable_test_methods) {
    RegisterTestMethods(methods_, options_.rank, &stopping_).IgnoreError();
  }
}

Rank::~Rank() { RequestStop(); }

void Rank::RequestStop() {
  std::call_once(stop_once_, [this] { stopping_.Notify(); });
}

const char* Rank::StateName(State state) {
  switch (state) {
    case State::kStarting:
      return "starting";
    case State::kInitializing:
      return "initializing";
    case State::kReady:
      return "ready";
    case State::kFailed:
      return "failed";
  }
  return "unknown";
}

void Rank::SetStore(std::shared_ptr<gloo::rendezvous::Store> store) {
  absl::MutexLock lock(&mu_);
  store_ = std::move(store);
}

Rank::Health Rank::health() const {
  absl::MutexLock lock(&mu_);
  // "initializing" is still "starting" to the protocol's three states.
  return {state_ == State::kReady    ? "ready"
          : state_ == State::kFailed ? "failed"
                                     : "starting",
          error_};
}

nlohmann::json Rank::Describe() const {
  char hostname[256] = {};
  gethostname(hostname, sizeof(hostname) - 1);
  absl::MutexLock lock(&mu_);
  nlohmann::json j = {
      {"rank", options_.rank},
      {"world_size", options_.world_size},
      {"pid", static_cast<int64_t>(getpid())},
      {"hostname", std::string(hostname)},
      {"device", options_.device},
      {"num_threads", kernels::NumThreads()},
      {"state", StateName(state_)},
      {"rss_bytes", ResidentBytes()},
      {"memory_available_bytes", AvailableMemoryBytes()},
      {"methods", methods_.Specs()},  // what calling each takes (controller/loom_service.h)
  };
  if (!error_.empty()) j["error"] = error_;
  if (model_info_.is_object()) j.update(model_info_);
  if (weights_) j["weights"] = weights_->Describe();
  if (runner_) {
    j["weight_buffer_digest"] = std::to_string(runner_->decoder().BufferAddressDigest());
  }
  return j;
}

absl::StatusOr<int64_t> Rank::Init(const EngineConfig& config, const RankInit& init) {
  {
    absl::MutexLock lock(&mu_);
    if (state_ != State::kStarting) {
      return absl::FailedPreconditionError(absl::StrCat("Init: the worker is already ",
                                                        StateName(state_),
                                                        error_.empty() ? "" : ": ", error_));
    }
    state_ = State::kInitializing;
  }
  int64_t num_kv_blocks = 0;
  absl::Status status;
  kernels::RunOnShortLivedThread([&] { status = DoInit(config, init, &num_kv_blocks); });
  absl::MutexLock lock(&mu_);
  if (!status.ok()) {
    // A failed Init leaves nothing half-built behind: the rank reports the error until it is
    // stopped; a new group is started with new workers.
    state_ = State::kFailed;
    error_ = std::string(status.message());
    return status;
  }
  state_ = State::kReady;
  return num_kv_blocks;
}

absl::Status Rank::DoInit(const EngineConfig& config, const RankInit& init,
                          int64_t* num_kv_blocks) {
  LOOM_RETURN_IF_ERROR(config.Validate());
  // The device first: a GPU that is not there fails before anything else is built.
  LOOM_ASSIGN_OR_RETURN(const DeviceSpec spec, ParseDeviceSpec(options_.device));
  Device device = Device::Cpu();
  if (spec.kind == DeviceKind::kCuda) {
    LOOM_ASSIGN_OR_RETURN(const int index,
                          DeviceIndexForRank(spec, options_.rank, options_.world_size,
                                             kernels::VisibleCudaDevices()));
    device = Device::Cuda(index);
  }
  // Host tensors travel over Gloo, device tensors over NCCL; empty = the device's own.
  const std::string own = device.is_cpu() ? "gloo" : "nccl";
  const std::string communicator = init.communicator.empty() ? own : init.communicator;
  if (communicator != own) {
    return absl::InvalidArgumentError(absl::StrCat("communicator \"", communicator,
                                                   "\" is not supported on device ",
                                                   options_.device, " (supported: ", own, ")"));
  }
  LOOM_ASSIGN_OR_RETURN(std::unique_ptr<kernels::ExecutionContext> context,
                        kernels::CreateExecutionContext(device));
  // Everything that can fail without peers is checked before the rendezvous, so a bad config
  // fails fast instead of keeping the other ranks waiting.
  LOOM_ASSIGN_OR_RETURN(ModelConfig model, ModelConfig::FromModelDir(config.load.model));
  const int threads = init.num_threads > 0 ? init.num_threads : options_.num_threads;
  kernels::SetNumThreads(threads);
  num_threads_ = threads;

  std::unique_ptr<Communicator> comm, weight_comm;
  std::string step_collectives = options_.world_size > 1 ? "nccl" : "none";  // for describe
  std::shared_ptr<gloo::rendezvous::Store> store;
  {
    // The controller may send Init as soon as it has seen the rank register, before the
    // transport has handed us the store; wait for it rather than fail.
    absl::MutexLock lock(&mu_);
    auto known = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return store_ != nullptr; };
    if (options_.world_size > 1) mu_.AwaitWithTimeout(absl::Condition(&known), absl::Seconds(10));
    store = store_;
  }
  if (options_.world_size > 1) {
    if (store == nullptr) {
      return absl::FailedPreconditionError("Init before registering with a controller");
    }
    GlooOptions gloo;
    gloo.rank = options_.rank;
    gloo.world_size = options_.world_size;
    gloo.store = store;
    gloo.prefix = init.store_prefix.empty() ? "gloo" : init.store_prefix;
    gloo.hostname = options_.hostname;
    gloo.timeout = options_.collective_timeout;
    if (device.is_cpu()) {
      // Shared memory when every rank runs on this machine (a step's collectives are small and
      // many, so their latency is what counts), Gloo over TCP otherwise.
      ShmOptions shm{options_.rank, options_.world_size, store, gloo.prefix,
                     options_.collective_timeout};
      LOOM_ASSIGN_OR_RETURN(std::unique_ptr<ShmCommunicator> local, ShmCommunicator::Create(shm));
      step_collectives = local != nullptr ? "shared memory" : "gloo";
      if (local != nullptr) {
        comm = std::move(local);
      } else {
        LOOM_ASSIGN_OR_RETURN(comm, GlooCommunicator::Create(gloo));
      }
    } else {
      // NCCL on the rank's GPU, waiting for the context's queued kernels before each collective.
      NcclGroupOptions nccl{gloo.prefix, options_.rank, options_.world_size, device.index,
                            options_.collective_timeout};
      LOOM_ASSIGN_OR_RETURN(std::unique_ptr<Communicator> inner, JoinNcclGroup(*store, nccl));
      comm = std::make_unique<DeviceOrderedCommunicator>(std::move(inner), context.get());
    }
    // Weight traffic runs on a group of its own, beside the steps'; it moves host tensors (the
    // loaders' reads), over Gloo on the host and over NCCL between GPUs (staged through the
    // device). Loads run for minutes on big models: their group waits longer than a step's.
    gloo.prefix += "/weights";
    gloo.timeout = std::max<std::chrono::milliseconds>(options_.collective_timeout,
                                                       std::chrono::minutes(10));
    if (device.is_cpu()) {
      LOOM_ASSIGN_OR_RETURN(weight_comm, GlooCommunicator::Create(gloo));
    } else {
      NcclGroupOptions nccl{gloo.prefix, options_.rank, options_.world_size, device.index,
                            gloo.timeout};
      LOOM_ASSIGN_OR_RETURN(std::unique_ptr<Communicator> inner, JoinNcclGroup(*store, nccl));
      weight_comm = std::make_unique<HostStagedCommunicator>(std::move(inner), context.get());
    }
  } else {
    weight_comm = std::make_unique<SingleRankCommunicator>();
  }
  ModelRunnerOptions runner_options;
  LOOM_ASSIGN_OR_RETURN(runner_options.decoder.weight_dtype,
                        ResolveWeightDType(config.load, model));
  runner_options.decoder.comm = comm.get();
  runner_options.decoder.context = context.get();
  // The activations are planned once, for the largest step the scheduler sends.
  runner_options.decoder.max_tokens = config.scheduler.max_num_batched_tokens;
  runner_options.decoder.max_sampled = config.scheduler.max_num_seqs;
  runner_options.block_size = config.cache.block_size;
  runner_options.kv_cache_bytes = config.cache.kv_cache_bytes;
  runner_options.decode_graphs = !config.enforce_eager;
  runner_options.graph_max_batch = config.scheduler.max_num_seqs;
  runner_options.graph_max_context = config.scheduler.max_model_len;
  // A GPU rank starts with the cache of its profiling step and is sized after the load.
  int64_t profile_tokens = config.scheduler.max_num_batched_tokens;
  if (config.scheduler.max_model_len > 0) {
    profile_tokens = std::min(profile_tokens, config.scheduler.max_model_len);
  }
  profile_tokens = std::min(profile_tokens, model.MaxContextLength());
  if (!device.is_cpu()) {
    runner_options.kv_cache_blocks = ProfileBlocks(profile_tokens, config.cache.block_size);
  }
  LOOM_ASSIGN_OR_RETURN(std::unique_ptr<ModelRunner> runner,
                        ModelRunner::Create(model, runner_options));
  auto weights = std::make_unique<WeightManager>(&runner->decoder(), runner_options.decoder,
                                                 weight_comm.get(), &step_mu_);
  // Published before the load so `describe` shows its progress; no step runs until Init ends.
  {
    absl::MutexLock step_lock(&step_mu_);
    absl::MutexLock lock(&mu_);
    context_ = std::move(context);
    comm_ = std::move(comm);
    weight_comm_ = std::move(weight_comm);
    runner_ = std::move(runner);
    weights_ = std::move(weights);
  }
  LOOM_ASSIGN_OR_RETURN(nlohmann::json report, weights_->InitialLoad(config.load, init.weight_version));
  std::string memory_plan = "host: kv_cache_bytes as configured";
  if (!device.is_cpu()) {
    absl::StatusOr<MemoryPlan> plan;
    {
      absl::MutexLock step_lock(&step_mu_);
      plan = SizeKvCache(*runner_, config.cache, profile_tokens);
    }
    if (!plan.ok()) {
      return absl::Status(plan.status().code(), absl::StrCat("device ", device.ToString(), ": ",
                                                             plan.status().message()));
    }
    memory_plan = plan->summary;
  }
  *num_kv_blocks = runner_->num_kv_blocks();

  WeightMethodsOptions methods_options;
  methods_options.rank = options_.rank;
  methods_options.world_size = options_.world_size;
  methods_options.hostname = options_.hostname;
  methods_options.store = store;
  auto methods = std::make_unique<WeightMethods>(methods_options, config, weights_.get(),
                                                 &runner_->decoder());
  nlohmann::json info = {
      {"model", config.load.model},
      {"architecture", model.architecture},
      {"weight_dtype", FloatDTypeName(runner_options.decoder.weight_dtype)},
      {"weight_bytes", runner_->decoder().WeightBytes()},
      {"workspace_bytes", runner_->decoder().WorkspaceBytes()},
      {"initial_load", report},
      {"block_size", runner_->block_size()},
      {"num_kv_blocks", runner_->num_kv_blocks()},
      {"kv_cache_bytes", runner_->kv_cache().nbytes()},
      {"device_name", context_->Description()},
      {"step_collectives", step_collectives},
      {"memory_plan", memory_plan},
      {"decode_graphs",
       runner_->decode_graphs() != nullptr
           ? absl::StrCat("buckets up to ", config.scheduler.max_num_seqs)
           : (config.enforce_eager ? "off (--enforce-eager)"
                                   : "off (" + context_->Description() +
                                         (options_.world_size > 1 ? ", TP > 1" : "") + ")")},
  };
  absl::MutexLock lock(&mu_);
  config_ = config;
  model_info_ = std::move(info);
  weight_methods_ = std::move(methods);
  return absl::OkStatus();
}

absl::StatusOr<nlohmann::json> Rank::Call(const std::string& method, const nlohmann::json& args) {
  // Handlers report errors as Status; an exception from a JSON accessor inside one still must
  // not take the rank down. Methods that may run kernels get a thread of their own
  // (threading.h); those that only read state run here.
  absl::StatusOr<nlohmann::json> result;
  kernels::ExecutionContext* context = nullptr;
  {
    absl::MutexLock lock(&mu_);
    context = context_.get();  // set once by Init, never replaced
  }
  const MethodSpec* spec = methods_.Spec(method);
  auto run = [&] {
    if (num_threads_ > 0) kernels::SetNumThreads(num_threads_);
    if (context != nullptr) {
      if (absl::Status bound = context->BindThread(); !bound.ok()) {
        result = bound;
        return;
      }
    }
    try {
      result = methods_.Call(method, args);
    } catch (const std::exception& e) {
      result = absl::InternalError(absl::StrCat("method ", method, " threw: ", e.what()));
    }
  };
  if (spec != nullptr && !spec->runs_kernels) {
    run();
  } else {
    kernels::RunOnShortLivedThread(run);
  }
  return result;
}

absl::StatusOr<nlohmann::json> Rank::Sleep(const nlohmann::json& args) {
  LOOM_RETURN_IF_ERROR(CheckReady("sleep"));
  const int64_t level = args.is_object() && args.contains("level") && args["level"].is_number_integer()
                            ? args["level"].get<int64_t>()
                            : 0;
  if (level != 1 && level != 2) {
    return absl::InvalidArgumentError("sleep: \"level\" must be 1 (weights offloaded or kept) "
                                      "or 2 (weights dropped)");
  }
  const int64_t rss_before = ResidentBytes();
  LOOM_ASSIGN_OR_RETURN(nlohmann::json report, weights_->Sleep(static_cast<int>(level)));
  {
    absl::MutexLock step(&step_mu_);
    kv_bytes_ = runner_->FreeKvCache();
  }
  report["kv_cache_bytes_freed"] = kv_bytes_;
  report["rss_bytes_before"] = rss_before;
  report["rss_bytes"] = ResidentBytes();
  return report;
}

absl::StatusOr<nlohmann::json> Rank::WakeUp(const nlohmann::json& args) {
  LOOM_RETURN_IF_ERROR(CheckReady("wake_up"));
  uint64_t version = 0;
  if (args.is_object() && args.contains("version")) {
    if (!args["version"].is_number_unsigned()) {
      return absl::InvalidArgumentError("wake_up: \"version\" must be a positive integer");
    }
    version = args["version"].get<uint64_t>();
  }
  LoadConfig load;
  {
    absl::MutexLock lock(&mu_);
    load = weight_methods_->config().load;
  }
  if (runner_->kv_cache().nbytes() == 0) {
    absl::MutexLock step(&step_mu_);
    LOOM_RETURN_IF_ERROR(runner_->RestoreKvCache(kv_bytes_));
  }
  LOOM_ASSIGN_OR_RETURN(nlohmann::json report, weights_->Wake(load, version));
  report["kv_cache_bytes"] = runner_->kv_cache().nbytes();
  report["rss_bytes"] = ResidentBytes();
  return report;
}

absl::Status Rank::CheckReady(const char* what) const {
  absl::MutexLock lock(&mu_);
  if (state_ != State::kReady) {
    return absl::FailedPreconditionError(
        absl::StrCat(what, " needs an initialised worker; this one is ", StateName(state_)));
  }
  return absl::OkStatus();
}

absl::StatusOr<StepOutput> Rank::Step(const StepInput& step, double* compute_seconds) {
  {
    absl::MutexLock lock(&mu_);
    if (state_ != State::kReady) {
      return absl::FailedPreconditionError(
          absl::StrCat("a step needs an initialised worker; this one is ", StateName(state_),
                       error_.empty() ? "" : ": ", error_));
    }
  }
  absl::MutexLock step_lock(&step_mu_);
  // The rank's thread count, on whatever thread runs its steps (the count is per thread).
  if (kernels::NumThreads() != num_threads_) kernels::SetNumThreads(num_threads_);
  LOOM_RETURN_IF_ERROR(context_->BindThread());
  LOOM_RETURN_IF_ERROR(weights_->CheckServing(step.weight_version));
  const ModelConfig& model = runner_->decoder().config();
  LOOM_RETURN_IF_ERROR(CheckStep(step, StepLimits{.vocab_size = model.vocab_size,
                                                  .max_positions = model.MaxContextLength(),
                                                  .block_size = runner_->block_size(),
                                                  .num_blocks = runner_->num_kv_blocks()}));
  ScopedStep stepping;  // a stage running beside paces itself while steps run (stage_pacer.h)
  const auto start = std::chrono::steady_clock::now();
  try {
    LOOM_ASSIGN_OR_RETURN(StepOutput output, runner_->Execute(step));
    if (compute_seconds != nullptr) {
      *compute_seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    }
    return output;
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("step threw: ", e.what()));
  }
}

}  // namespace loom
