#include "worker/worker_service.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <exception>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/engine_config_json.h"
#include "common/model_config.h"
#include "common/status.h"
#include "kernels/threading.h"
#include "worker/comm/gloo_communicator.h"
#include "worker/controller_store.h"
#include "worker/loader/weight_dtype.h"

namespace loom {
namespace {

grpc::Status ToGrpc(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

// MemAvailable from /proc/meminfo in bytes, or -1 when unreadable.
int64_t AvailableMemoryBytes() {
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  int64_t kib = 0;
  std::string unit;
  while (meminfo >> key >> kib >> unit) {
    if (key == "MemAvailable:") return kib * 1024;
  }
  return -1;
}

// Resident set size from /proc/self/statm, or -1 when unreadable.
int64_t ResidentBytes() {
  std::ifstream statm("/proc/self/statm");
  int64_t size_pages = 0, resident_pages = 0;
  if (!(statm >> size_pages >> resident_pages)) return -1;
  return resident_pages * sysconf(_SC_PAGESIZE);
}

// The proto step as the runner takes it, checked against what the runner does not check itself
// (token ids and positions index tables that have no bounds checks of their own).
absl::StatusOr<StepInput> ToStepInput(const loom::v1::StepRequest& request,
                                      const ModelConfig& model) {
  StepInput input;
  input.sequences.reserve(request.sequences_size());
  for (const loom::v1::SequenceStep& s : request.sequences()) {
    SequenceStep& out = input.sequences.emplace_back();
    out.seq_id = s.seq_id();
    out.token_ids.assign(s.token_ids().begin(), s.token_ids().end());
    out.start_position = s.start_position();
    out.block_table.assign(s.block_table().begin(), s.block_table().end());
    out.sample = s.sample();
    out.sampling.temperature = s.sampling().temperature();
    out.sampling.top_k = s.sampling().top_k();
    out.sampling.top_p = s.sampling().top_p() == 0 ? 1.0f : s.sampling().top_p();
    out.sampling.seed = s.sampling().seed();
    out.sample_index = s.sample_index();
    for (int32_t t : out.token_ids) {
      if (t < 0 || t >= model.vocab_size) {
        return absl::InvalidArgumentError(absl::StrCat("sequence ", out.seq_id, ": token id ", t,
                                                       " outside [0, ", model.vocab_size, ")"));
      }
    }
    const int64_t end = int64_t{out.start_position} + static_cast<int64_t>(out.token_ids.size());
    if (out.start_position < 0 || end > model.MaxContextLength()) {
      return absl::InvalidArgumentError(
          absl::StrCat("sequence ", out.seq_id, ": positions [", out.start_position, ", ", end,
                       ") outside the model's ", model.MaxContextLength(), " positions"));
    }
  }
  return input;
}

}  // namespace

WorkerService::WorkerService(const WorkerServiceOptions& options) : options_(options) {
  // Registration cannot fail here: the names are fixed and distinct.
  methods_
      .Register(
          "describe",
          [this](const nlohmann::json&) -> absl::StatusOr<nlohmann::json> { return Describe(); })
      .IgnoreError();
  methods_
      .Register("check_health",
                [this](const nlohmann::json&) -> absl::StatusOr<nlohmann::json> {
                  absl::MutexLock lock(&mu_);
                  if (state_ == State::kFailed) {
                    return absl::UnavailableError(absl::StrCat("failed: ", error_));
                  }
                  return nlohmann::json{{"state", StateName(state_)}};
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

WorkerService::~WorkerService() { RequestStop(); }

void WorkerService::RequestStop() {
  std::call_once(stop_once_, [this] { stopping_.Notify(); });
}

const char* WorkerService::StateName(State state) {
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

void WorkerService::SetController(std::shared_ptr<loom::v1::Controller::StubInterface> controller,
                                  const std::string& session_id) {
  absl::MutexLock lock(&mu_);
  controller_ = std::move(controller);
  session_id_ = session_id;
}

nlohmann::json WorkerService::Describe() const {
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
  };
  if (!error_.empty()) j["error"] = error_;
  if (model_info_.is_object()) j.update(model_info_);
  if (weights_) j["weights"] = weights_->Describe();
  if (runner_) {
    j["weight_buffer_digest"] = std::to_string(runner_->decoder().BufferAddressDigest());
  }
  return j;
}

grpc::Status WorkerService::Init(grpc::ServerContext*, const loom::v1::InitRequest* request,
                                 loom::v1::InitResponse* response) {
  {
    absl::MutexLock lock(&mu_);
    if (state_ != State::kStarting) {
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                          absl::StrCat("Init: the worker is already ", StateName(state_),
                                       error_.empty() ? "" : ": ", error_));
    }
    state_ = State::kInitializing;
  }
  int64_t num_kv_blocks = 0;
  absl::Status status = DoInit(*request, &num_kv_blocks);
  {
    absl::MutexLock lock(&mu_);
    if (!status.ok()) {
      // A failed Init leaves nothing half-built behind: the worker reports the error until it
      // is stopped; a new group is started with new workers.
      state_ = State::kFailed;
      error_ = std::string(status.message());
      return ToGrpc(status);
    }
    state_ = State::kReady;
  }
  response->set_num_kv_blocks(num_kv_blocks);
  response->set_describe_json(Describe().dump());
  return grpc::Status::OK;
}

absl::Status WorkerService::DoInit(const loom::v1::InitRequest& request, int64_t* num_kv_blocks) {
  LOOM_ASSIGN_OR_RETURN(EngineConfig config, EngineConfigFromJson(request.engine_config_json()));
  LOOM_RETURN_IF_ERROR(config.Validate());
  const std::string communicator = request.communicator().empty() ? "gloo" : request.communicator();
  if (communicator != "gloo") {
    return absl::InvalidArgumentError(absl::StrCat("communicator \"", communicator,
                                                   "\" is not supported on device ",
                                                   options_.device, " (supported: gloo)"));
  }
  // Everything that can fail without peers is checked before the rendezvous, so a bad config
  // fails fast instead of keeping the other ranks waiting.
  LOOM_ASSIGN_OR_RETURN(ModelConfig model, ModelConfig::FromModelDir(config.load.model));
  kernels::SetNumThreads(request.num_threads() > 0 ? request.num_threads() : options_.num_threads);

  std::unique_ptr<Communicator> comm, weight_comm;
  std::shared_ptr<gloo::rendezvous::Store> store;
  if (options_.world_size > 1) {
    std::shared_ptr<loom::v1::Controller::StubInterface> controller;
    std::string session;
    {
      // The controller may send Init as soon as it has seen our Register, before its reply
      // has reached us; wait for the reply rather than fail.
      absl::MutexLock lock(&mu_);
      auto registered = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return controller_ != nullptr; };
      mu_.AwaitWithTimeout(absl::Condition(&registered), absl::Seconds(10));
      controller = controller_;
      session = session_id_;
    }
    if (controller == nullptr) {
      return absl::FailedPreconditionError("Init before registering with a controller");
    }
    store = std::make_shared<ControllerStore>(controller, session, options_.collective_timeout);
    GlooOptions gloo;
    gloo.rank = options_.rank;
    gloo.world_size = options_.world_size;
    gloo.store = store;
    gloo.prefix = request.store_prefix().empty() ? "gloo" : request.store_prefix();
    gloo.hostname = options_.hostname;
    gloo.timeout = options_.collective_timeout;
    LOOM_ASSIGN_OR_RETURN(comm, GlooCommunicator::Create(gloo));
    // Loads run for minutes on big models; their group waits longer than a step's.
    gloo.prefix += "/weights";
    gloo.timeout = std::max<std::chrono::milliseconds>(options_.collective_timeout,
                                                       std::chrono::minutes(10));
    LOOM_ASSIGN_OR_RETURN(weight_comm, GlooCommunicator::Create(gloo));
  } else {
    weight_comm = std::make_unique<SingleRankCommunicator>();
    absl::MutexLock lock(&mu_);
    if (controller_ != nullptr) {
      store = std::make_shared<ControllerStore>(controller_, session_id_,
                                                options_.collective_timeout);
    }
  }
  ModelRunnerOptions runner_options;
  LOOM_ASSIGN_OR_RETURN(runner_options.decoder.weight_dtype,
                        ResolveWeightDType(config.load, model));
  runner_options.decoder.comm = comm.get();
  runner_options.block_size = config.cache.block_size;
  runner_options.kv_cache_bytes = config.cache.kv_cache_bytes;
  LOOM_ASSIGN_OR_RETURN(std::unique_ptr<ModelRunner> runner,
                        ModelRunner::Create(model, runner_options));
  auto weights = std::make_unique<WeightManager>(&runner->decoder(), runner_options.decoder,
                                                 weight_comm.get(), &step_mu_);
  // Published before the load so `describe` shows its progress; no step runs until Init ends.
  {
    absl::MutexLock step_lock(&step_mu_);
    absl::MutexLock lock(&mu_);
    comm_ = std::move(comm);
    weight_comm_ = std::move(weight_comm);
    runner_ = std::move(runner);
    weights_ = std::move(weights);
  }
  LOOM_ASSIGN_OR_RETURN(nlohmann::json report, weights_->InitialLoad(config.load));
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
      {"initial_load", report},
      {"block_size", runner_->block_size()},
      {"num_kv_blocks", runner_->num_kv_blocks()},
      {"kv_cache_bytes", runner_->kv_cache().nbytes()},
  };
  absl::MutexLock lock(&mu_);
  config_ = config;
  model_info_ = std::move(info);
  weight_methods_ = std::move(methods);
  return absl::OkStatus();
}

grpc::Status WorkerService::Call(grpc::ServerContext*, const loom::v1::CallRequest* request,
                                 loom::v1::CallResponse* response) {
  nlohmann::json args;
  if (!request->args_json().empty()) {
    args = nlohmann::json::parse(request->args_json(), nullptr, /*allow_exceptions=*/false);
    if (args.is_discarded()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          absl::StrCat("method ", request->method(),
                                       ": args are not valid JSON: ", request->args_json()));
    }
  }
  // Handlers report errors as Status; an exception from a JSON accessor inside one still must
  // not take the worker down.
  try {
    absl::StatusOr<nlohmann::json> result = methods_.Call(request->method(), args);
    if (!result.ok()) return ToGrpc(result.status());
    response->set_result_json(result->dump());
    return grpc::Status::OK;
  } catch (const std::exception& e) {
    return grpc::Status(grpc::StatusCode::INTERNAL,
                        absl::StrCat("method ", request->method(), " threw: ", e.what()));
  }
}

absl::Status WorkerService::RunStep(const loom::v1::StepRequest& request,
                                    loom::v1::StepResponse& response) {
  {
    absl::MutexLock lock(&mu_);
    if (state_ != State::kReady) {
      return absl::FailedPreconditionError(
          absl::StrCat("a step needs an initialised worker; this one is ", StateName(state_),
                       error_.empty() ? "" : ": ", error_));
    }
  }
  absl::MutexLock step_lock(&step_mu_);
  LOOM_RETURN_IF_ERROR(weights_->CheckServing(request.weight_version()));
  LOOM_ASSIGN_OR_RETURN(StepInput input, ToStepInput(request, runner_->decoder().config()));
  const auto start = std::chrono::steady_clock::now();
  LOOM_ASSIGN_OR_RETURN(StepOutput output, runner_->Execute(input));
  response.set_compute_seconds(
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  // Every rank samples the same tokens from the same all-gathered logits; rank 0 speaks for all.
  if (options_.rank == 0) {
    response.mutable_seq_ids()->Add(output.seq_ids.begin(), output.seq_ids.end());
    response.mutable_tokens()->Add(output.tokens.begin(), output.tokens.end());
  }
  return absl::OkStatus();
}

grpc::Status WorkerService::Steps(
    grpc::ServerContext*,
    grpc::ServerReaderWriter<loom::v1::StepResponse, loom::v1::StepRequest>* stream) {
  loom::v1::StepRequest request;
  while (stream->Read(&request)) {
    loom::v1::StepResponse response;
    response.set_step_id(request.step_id());
    absl::Status status;
    try {
      status = RunStep(request, response);
    } catch (const std::exception& e) {
      status = absl::InternalError(absl::StrCat("step threw: ", e.what()));
    }
    if (!status.ok()) {
      response.clear_seq_ids();
      response.clear_tokens();
      response.set_error(std::string(status.message()));
      response.set_error_code(static_cast<int>(status.code()));
    }
    if (!stream->Write(response)) break;
  }
  return grpc::Status::OK;
}

grpc::Status WorkerService::Health(grpc::ServerContext*, const loom::v1::HealthRequest*,
                                   loom::v1::HealthResponse* response) {
  absl::MutexLock lock(&mu_);
  // "initializing" is still "starting" to the protocol's three states.
  response->set_state(state_ == State::kReady    ? "ready"
                      : state_ == State::kFailed ? "failed"
                                                 : "starting");
  response->set_error(error_);
  return grpc::Status::OK;
}

grpc::Status WorkerService::Shutdown(grpc::ServerContext*, const loom::v1::WorkerShutdownRequest*,
                                     loom::v1::WorkerShutdownResponse*) {
  // The main thread stops the server once this reply is on its way.
  RequestStop();
  return grpc::Status::OK;
}

}  // namespace loom
