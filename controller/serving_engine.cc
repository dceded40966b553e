#include "controller/serving_engine.h"

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "common/status.h"
#include "controller/worker_processes.h"

namespace loom {

bool RequestStream::Next(GenerateDelta* delta, std::chrono::milliseconds timeout) {
  absl::MutexLock lock(&mu_);
  auto ready = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return !pending_.empty(); };
  mu_.AwaitWithTimeout(absl::Condition(&ready), absl::FromChrono(timeout));
  if (pending_.empty()) return false;
  *delta = std::move(pending_.front());
  pending_.pop_front();
  // Merge what else arrived, so a slow reader gets fewer, larger messages.
  while (!delta->done && !pending_.empty() &&
         pending_.front().weight_version == delta->weight_version) {
    GenerateDelta& next = pending_.front();
    delta->token_ids.insert(delta->token_ids.end(), next.token_ids.begin(), next.token_ids.end());
    delta->text += next.text;
    for (std::vector<float>& row : next.logits) delta->logits.push_back(std::move(row));
    for (TokenLogprobs& l : next.logprobs) delta->logprobs.push_back(std::move(l));
    delta->done = next.done;
    delta->finish_reason = next.finish_reason;
    delta->prompt_tokens = next.prompt_tokens;
    delta->completion_tokens = next.completion_tokens;
    delta->error = next.error;
    pending_.pop_front();
  }
  return true;
}

void RequestStream::SetListener(std::function<void()> listener) {
  absl::MutexLock lock(&listener_mu_);
  listener_ = std::move(listener);
}

void RequestStream::Cancel() {
  {
    absl::MutexLock lock(&mu_);
    if (cancelled_) return;
    cancelled_ = true;
    pending_.clear();
  }
  if (on_cancel_) on_cancel_();
}

void RequestStream::Push(GenerateDelta delta) {
  {
    absl::MutexLock lock(&mu_);
    if (cancelled_) return;
    pending_.push_back(std::move(delta));
  }
  absl::MutexLock lock(&listener_mu_);
  if (listener_) listener_();
}

bool RequestStream::cancelled() const {
  absl::MutexLock lock(&mu_);
  return cancelled_;
}

absl::StatusOr<Completion> WaitForCompletion(RequestStream& stream) {
  Completion c;
  while (true) {
    GenerateDelta delta;
    if (!stream.Next(&delta, std::chrono::seconds(1))) continue;
    if (!delta.error.ok()) return delta.error;
    c.token_ids.insert(c.token_ids.end(), delta.token_ids.begin(), delta.token_ids.end());
    c.weight_versions.insert(c.weight_versions.end(), delta.token_ids.size(),
                             delta.weight_version);
    c.text += delta.text;
    for (std::vector<float>& row : delta.logits) c.logits.push_back(std::move(row));
    for (TokenLogprobs& l : delta.logprobs) c.logprobs.push_back(std::move(l));
    if (delta.done) {
      c.finish_reason = delta.finish_reason;
      c.prompt_tokens = delta.prompt_tokens;
      c.completion_tokens = delta.completion_tokens;
      return c;
    }
  }
}

absl::StatusOr<std::unique_ptr<ServingEngine>> ServingEngine::Start(
    const ServingEngineOptions& options) {
  LOOM_RETURN_IF_ERROR(options.config.Validate());
  // Read before any worker starts: a bad model directory fails fast.
  LOOM_ASSIGN_OR_RETURN(std::shared_ptr<const ServedModel> model,
                        ServedModel::Load(options.config.load.model, options.config.scheduler));
  LOOM_ASSIGN_OR_RETURN(std::unique_ptr<WorkerProcesses> workers,
                        WorkerProcesses::Start(options.supervisor, options.init_timeout));
  return Start(options, std::move(model), std::move(workers));
}

absl::StatusOr<std::unique_ptr<ServingEngine>> ServingEngine::Start(
    const ServingEngineOptions& options, std::unique_ptr<Executor> executor) {
  LOOM_RETURN_IF_ERROR(options.config.Validate());
  LOOM_ASSIGN_OR_RETURN(std::shared_ptr<const ServedModel> model,
                        ServedModel::Load(options.config.load.model, options.config.scheduler));
  return Start(options, std::move(model), std::move(executor));
}

absl::StatusOr<std::unique_ptr<ServingEngine>> ServingEngine::Start(
    const ServingEngineOptions& options, std::shared_ptr<const ServedModel> model,
    std::unique_ptr<Executor> executor) {
  std::unique_ptr<ServingEngine> engine(new ServingEngine(options));
  engine->executor_ = std::move(executor);
  engine->model_config_ = model->config();
  {
    absl::MutexLock lock(&engine->mu_);
    engine->model_ = model;
  }
  std::atomic<bool> initialised{false};
  std::thread progress;
  if (options.on_load_progress) {
    progress = std::thread([&] {
      Executor& executor = *engine->executor_;
      while (!initialised.load()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(250));
        std::vector<nlohmann::json> ranks(executor.world_size());
        absl::StatusOr<std::vector<RankResult>> d =
            executor.CollectiveCall("describe", "{}", std::chrono::seconds(1));
        if (!d.ok() || initialised.load()) continue;
        for (const RankResult& r : *d) ranks[r.rank] = r.result.value("weights", nlohmann::json());
        options.on_load_progress(ranks);
      }
    });
  }
  absl::StatusOr<GroupInitResult> init =
      engine->executor_->Init(options.config, options.num_threads, /*weight_version=*/1);
  initialised = true;
  if (progress.joinable()) progress.join();
  LOOM_RETURN_IF_ERROR(init.status());
  engine->num_kv_blocks_ = init->num_kv_blocks;
  if (!init->describe.empty() && init->describe[0].is_object()) {
    const nlohmann::json specs = init->describe[0].value("methods", nlohmann::json::object());
    if (specs.is_object()) engine->method_specs_ = specs;
  }
  engine->NewScheduler();
  WeightCoordinatorHooks hooks;
  ServingEngine* e = engine.get();
  hooks.call = [e](const std::string& method, const std::string& args,
                   std::chrono::milliseconds timeout) -> absl::StatusOr<std::vector<RankResult>> {
    return e->executor_->CollectiveCall(method, args, timeout);
  };
  hooks.between_steps = [e](std::function<absl::Status()> fn) { return e->BetweenSteps(fn); };
  hooks.switched = [e](uint64_t version, SwitchPolicy policy,
                       std::shared_ptr<const ServedModel> model) {
    e->Switched(version, policy, std::move(model));
  };
  hooks.broken = [e](const absl::Status& error) { e->Break(error); };
  hooks.slept = [e](int level, SwitchPolicy policy) { e->Slept(level, policy); };
  engine->weights_ =
      std::make_unique<WeightCoordinator>(options.config, std::move(model), std::move(hooks));
  engine->thread_ = std::thread([e = engine.get()] { e->Loop(); });
  return engine;
}

ServingEngine::~ServingEngine() { Stop(); }

std::shared_ptr<const ServedModel> ServingEngine::CurrentModel() const {
  absl::MutexLock lock(&mu_);
  return model_;
}

bool ServingEngine::has_tokenizer() const { return CurrentModel()->tokenizer() != nullptr; }

void ServingEngine::NewScheduler() {
  const std::shared_ptr<const ServedModel> model = CurrentModel();
  if (scheduler_ != nullptr) {  // its counts carry over; its cache does not (the KV is suspect)
    prefix_base_queries_ += scheduler_->block_manager().prefix_queries();
    prefix_base_hits_ += scheduler_->block_manager().prefix_hits();
  }
  SchedulerConfig config = options_.config.scheduler;
  // Dynamic RoPE rotates a token by its sequence's length: its KV is not a prefix's to share.
  if (model_config_.rope_scaling.type == "dynamic") config.enable_prefix_caching = false;
  scheduler_ = std::make_unique<Scheduler>(config, model->max_model_len(), num_kv_blocks_,
                                           options_.config.cache.block_size,
                                           model->eos_token_ids());
  scheduler_->SetWeightVersion(serving_version_);
  Publish();
}

namespace {

absl::StatusOr<std::vector<int32_t>> EncodePrompt(const ServedModel& model,
                                                  const std::string& prompt) {
  if (model.tokenizer() == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("prompt text needs a tokenizer, and the model directory ", model.dir(),
                     " has no tokenizer.json; send prompt ids instead"));
  }
  LOOM_ASSIGN_OR_RETURN(std::vector<int32_t> ids, model.tokenizer()->Encode(prompt, true));
  if (ids.empty()) return absl::InvalidArgumentError("the prompt encodes to no tokens");
  return ids;
}

}  // namespace

absl::StatusOr<std::shared_ptr<RequestStream>> ServingEngine::Submit(ServingRequest request) {
  LOOM_ASSIGN_OR_RETURN(std::vector<std::shared_ptr<RequestStream>> streams,
                        SubmitChoices(std::move(request), 1));
  return std::move(streams[0]);
}

absl::StatusOr<std::vector<std::shared_ptr<RequestStream>>> ServingEngine::SubmitChoices(
    ServingRequest request, int n) {
  if (n < 1 || n > kMaxChoices) {
    return absl::InvalidArgumentError(absl::StrCat("n must be in [1, ", kMaxChoices, "], got ", n));
  }
  GenerationRequest& g = request.generation;
  const std::shared_ptr<const ServedModel> model = CurrentModel();
  std::string prompt;  // kept only when it is what the ids came from
  if (g.prompt_ids.empty()) {
    if (request.prompt.empty()) {
      return absl::InvalidArgumentError("the request has neither prompt text nor prompt ids");
    }
    LOOM_ASSIGN_OR_RETURN(g.prompt_ids, EncodePrompt(*model, request.prompt));
    prompt = std::move(request.prompt);
  }
  for (int32_t id : g.prompt_ids) {
    if (id < 0 || id >= model_config_.vocab_size) {
      return absl::InvalidArgumentError(
          absl::StrCat("prompt token id ", id, " outside [0, ", model_config_.vocab_size, ")"));
    }
  }
  if (g.max_tokens == 0) g.max_tokens = model->generation_defaults().max_new_tokens;
  if (g.max_tokens < 0) return absl::InvalidArgumentError("max_tokens must not be negative");
  LOOM_RETURN_IF_ERROR(ValidateSamplingParams(g.sampling));
  LOOM_RETURN_IF_ERROR(StopStringMatcher::Validate(g.stop_strings));
  if (!g.stop_strings.empty() && model->tokenizer() == nullptr) {
    return absl::InvalidArgumentError(
        "stop strings are matched on text, and this model has no tokenizer.json");
  }
  std::vector<std::shared_ptr<RequestStream>> streams;
  for (int k = 0; k < n; ++k) {
    // A cancel only raises a flag the engine thread looks at before its next step.
    streams.push_back(std::make_shared<RequestStream>([this] {
      absl::MutexLock lock(&mu_);
      cancel_pending_ = true;
    }));
  }
  absl::MutexLock lock(&mu_);
  if (stopping_) return absl::UnavailableError("the server is shutting down");
  if (draining_) {
    return absl::UnavailableError(
        "the server is draining: it finishes the requests it has and takes no new ones");
  }
  if (sleep_level_ > 0) {
    return absl::UnavailableError(absl::StrCat(
        "the server is asleep (level ", sleep_level_, "); wake_up makes it serve again"));
  }
  if (!broken_.ok()) return broken_;
  const int64_t waiting = static_cast<int64_t>(queue_.size()) + num_scheduler_waiting_;
  if (options_.max_waiting > 0 && waiting + n > options_.max_waiting) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "the waiting queue is full (", waiting, " requests wait to run, ", n,
        " more asked; --max-waiting ", options_.max_waiting, "); retry later"));
  }
  const auto arrival = std::chrono::steady_clock::now();
  for (int k = 0; k < n; ++k) {
    GenerationRequest choice = g;
    choice.sampling.seed += static_cast<uint64_t>(k);
    queue_.push_back({std::move(choice), streams[k], prompt, model, arrival});
  }
  return streams;
}

void ServingEngine::Drain() {
  absl::MutexLock lock(&mu_);
  draining_ = true;
}

bool ServingEngine::draining() const {
  absl::MutexLock lock(&mu_);
  return draining_;
}

int64_t ServingEngine::InFlight() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int64_t>(queue_.size()) + admitting_ + num_running_;
}

absl::StatusOr<std::vector<RankResult>> ServingEngine::CollectiveCall(
    const std::string& method, const std::string& args_json, std::chrono::milliseconds timeout,
    const std::vector<int>& ranks) {
  if (options_.path_roots.confined()) {
    const nlohmann::json spec = method_specs_.value(method, nlohmann::json::object());
    const nlohmann::json pointers = spec.value("path_args", nlohmann::json::array());
    if (pointers.is_array() && !pointers.empty()) {
      const nlohmann::json args =
          args_json.empty() ? nlohmann::json() : nlohmann::json::parse(args_json, nullptr, false);
      if (args.is_discarded()) {
        return absl::InvalidArgumentError(absl::StrCat(method, ": args are not JSON"));
      }
      std::vector<std::string> paths;
      for (const nlohmann::json& p : pointers) {
        if (p.is_string()) paths.push_back(p.get<std::string>());
      }
      LOOM_RETURN_IF_ERROR(options_.path_roots.CheckArgs(method, paths, args));
    }
  }
  if (WeightCoordinator::Handles(method)) {
    if (!ranks.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("method ", method, " changes the weights of every rank; it cannot be sent "
                       "to some ranks only"));
    }
    return weights_->Call(method, args_json, timeout);
  }
  return executor_->CollectiveCall(method, args_json, timeout, ranks);
}

bool ServingEngine::MethodNeedsAdmin(const std::string& method) const {
  const auto it = method_specs_.find(method);
  if (it == method_specs_.end() || !it->is_object()) return true;
  const auto admin = it->find("admin");
  return admin == it->end() || !admin->is_boolean() || admin->get<bool>();
}

absl::Status ServingEngine::CheckRanks() const { return executor_->Health(); }

EngineStatus ServingEngine::Status() const {
  EngineStatus status;
  status.world_size = executor_->world_size();
  status.num_kv_blocks = num_kv_blocks_;
  std::shared_ptr<const ServedModel> model;
  {
    absl::MutexLock lock(&mu_);
    model = model_;
    status.running_requests = num_running_ - static_cast<int>(num_scheduler_waiting_);
    status.waiting_requests = static_cast<int>(queue_.size() + num_scheduler_waiting_);
    status.num_free_kv_blocks = num_free_blocks_;
    status.prefix_cache_queries = prefix_queries_;
    status.time_to_first_token = ttft_;
    status.inter_token_latency = itl_;
    status.e2e_request_latency = e2e_;
    status.request_queue_time = queue_time_;
    status.prompt_tokens_total = prompt_tokens_total_;
    status.generation_tokens_total = generation_tokens_total_;
    status.prefix_cache_hits = prefix_hits_;
    status.steps = steps_;
    status.preemptions = preemptions_;
    status.finished = finished_;
    status.broken = broken_;
    status.draining = draining_;
    status.sleep_level = sleep_level_;
    status.restarts = restarts_;
    status.last_failure = last_failure_;
    status.healing = healing_;
  }
  status.model = model->dir();
  if (model->tokenizer() != nullptr) {
    status.tokenizer = (std::filesystem::path(model->dir()) / "tokenizer.json").string();
  }
  status.eos_token_ids = model->eos_token_ids();
  status.max_model_len = model->max_model_len();
  status.default_max_tokens = model->generation_defaults().max_new_tokens;
  status.serving_weight_version = weights_->serving_version();
  status.staged_weight_version = weights_->staged_version();
  status.previous_weight_version = weights_->previous_version();
  status.controller_address = executor_->controller_address();
  status.session_id = executor_->session_id();
  std::vector<nlohmann::json> described(status.world_size), memory(status.world_size);
  {
    // What each rank says about its weights; a rank busy loading still answers (describe
    // runs beside loads), a dead one simply has none.
    for (int r = 0; r < status.world_size; ++r) {
      absl::StatusOr<std::vector<RankResult>> d =
          executor_->CollectiveCall("describe", "{}", std::chrono::seconds(2), {r});
      if (d.ok() && !d->empty()) {
        const nlohmann::json& rank = (*d)[0].result;
        described[r] = rank.value("weights", nlohmann::json());
        // Where the rank's memory went (rank.cc's describe), for `loom status`.
        nlohmann::json m = nlohmann::json::object();
        for (const char* key : {"device_name", "memory_plan", "weight_bytes", "workspace_bytes",
                                "kv_cache_bytes", "num_kv_blocks"}) {
          if (rank.contains(key)) m[key] = rank[key];
        }
        memory[r] = std::move(m);
      }
    }
  }
  const std::vector<RankProcess> processes = executor_->Processes();
  for (int r = 0; r < status.world_size; ++r) {
    RankState& rank = status.ranks.emplace_back();
    rank.rank = r;
    rank.pid = processes[r].pid;
    rank.device = processes[r].device;
    rank.address = processes[r].address;
    const absl::Status& s = processes[r].status;
    if (s.ok()) {
      rank.state = "ready";
    } else {
      rank.state = absl::StrContains(s.message(), "exited with code 0") ? "exited" : "failed";
      rank.error = std::string(s.message());
    }
    rank.weights = described[r];
    rank.memory = memory[r];
  }
  return status;
}

void ServingEngine::Loop() {
  while (true) {
    std::deque<Queued> queued;
    std::deque<std::function<void()>> between;
    bool cancelled = false;
    bool asleep = false;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
        return stopping_ || !queue_.empty() || !between_steps_.empty() || cancel_pending_;
      };
      // Asleep, the ranks hold no KV: requests in flight wait for the wake.
      if (!scheduler_->HasWork() || sleep_level_ > 0) {
        mu_.AwaitWithTimeout(absl::Condition(&ready), absl::FromChrono(kHealthPollInterval));
      }
      if (stopping_) break;
      queued.swap(queue_);
      admitting_ = static_cast<int64_t>(queued.size());
      between.swap(between_steps_);
      cancelled = std::exchange(cancel_pending_, false);
    }
    // Before anything else runs: a client that went away is in no later step.
    if (cancelled) DropCancelled();
    for (auto& fn : between) fn();
    if (!queued.empty()) {
      Admit(std::move(queued));  // publishes them as running before they stop being admitted
      absl::MutexLock lock(&mu_);
      admitting_ = 0;
    }
    {
      absl::MutexLock lock(&mu_);  // after `between`, which may have put the ranks to sleep
      asleep = sleep_level_ > 0;
    }
    if (scheduler_->HasWork() && !asleep) {
      RunStep();
    } else {
      absl::Status health = CheckRanks();
      bool broken;
      {
        absl::MutexLock lock(&mu_);
        broken = !broken_.ok();
      }
      if (!health.ok() && !broken) HealOrBreak(health);
    }
  }
  FailAll(absl::UnavailableError("the server is shutting down"));
  std::deque<std::function<void()>> between;
  {
    absl::MutexLock lock(&mu_);
    between.swap(between_steps_);
  }
  for (auto& fn : between) fn();  // each sees stopping_ and fails
}

absl::Status ServingEngine::BetweenSteps(std::function<absl::Status()> fn) {
  auto done = std::make_shared<absl::Notification>();
  auto result = std::make_shared<absl::Status>();
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return absl::UnavailableError("the server is shutting down");
    between_steps_.push_back([this, fn, done, result, restarts = restarts_] {
      bool stopping, restarted;
      {
        absl::MutexLock lock(&mu_);
        stopping = stopping_;
        restarted = restarts_ != restarts;
      }
      // An operation that began on ranks a failure has since replaced applies to none.
      *result = stopping    ? absl::UnavailableError("the server is shutting down")
                : restarted ? absl::AbortedError("the ranks were restarted after a failure "
                                                 "while this waited; nothing was applied")
                            : fn();
      done->Notify();
    });
  }
  done->WaitForNotification();
  return *result;
}

void ServingEngine::Switched(uint64_t version, SwitchPolicy policy,
                             std::shared_ptr<const ServedModel> model) {
  serving_version_ = version;
  scheduler_->SetWeightVersion(version);  // no later prefix match finds the old weights' KV
  const std::shared_ptr<const ServedModel> old = CurrentModel();
  if (model->tokenizer() != old->tokenizer()) {
    // Every sequence's ids belong to the old vocabulary: no recompute makes sense of them.
    std::vector<int64_t> ids;
    for (const auto& [id, active] : active_) ids.push_back(id);
    for (int64_t id : ids) {
      (void)scheduler_->Abort(id);
      EndActive(id, FinishReason::kAbort);
    }
  } else if (policy == SwitchPolicy::kRecompute) {
    scheduler_->RecomputeAll();
  } else {
    for (const GenerationResult& r : scheduler_->AbortStarted()) {
      EndActive(r.request_id, FinishReason::kAbort);
    }
  }
  if (model != old) {
    for (const GenerationResult& r :
         scheduler_->SetModelLimits(model->max_model_len(), model->eos_token_ids())) {
      EndActive(r.request_id, FinishReason::kLength);
    }
    absl::MutexLock lock(&mu_);
    model_ = std::move(model);
  }
  Publish();
}

void ServingEngine::Slept(int level, SwitchPolicy policy) {
  if (level > 0) {
    // The ranks' KV is gone: what ran is recomputed after the wake, or ends now.
    if (policy == SwitchPolicy::kRecompute) {
      scheduler_->RecomputeAll();
    } else {
      for (const GenerationResult& r : scheduler_->AbortStarted()) {
        EndActive(r.request_id, FinishReason::kAbort);
      }
    }
    scheduler_->ResetPrefixCache();
  }
  {
    absl::MutexLock lock(&mu_);
    sleep_level_ = level;
  }
  Publish();
}

void ServingEngine::EndActive(int64_t id, FinishReason reason) {
  auto it = active_.find(id);
  if (it == active_.end()) return;
  Active& active = it->second;
  GenerateDelta end;
  end.text = FinalText(active);
  end.done = true;
  end.finish_reason = reason;
  end.prompt_tokens = active.prompt_tokens;
  end.completion_tokens = active.completion_tokens;
  end.weight_version = serving_version_;
  active.stream->Push(std::move(end));
  active_.erase(it);
  CountFinished(reason);
}

void ServingEngine::DropCancelled() {
  std::vector<int64_t> gone;
  for (const auto& [id, active] : active_) {
    if (active.stream->cancelled()) gone.push_back(id);
  }
  for (int64_t id : gone) {
    (void)scheduler_->Abort(id);  // its blocks are free from here
    EndActive(id, FinishReason::kAbort);
  }
  if (!gone.empty()) Publish();
}

void ServingEngine::CountFinished(FinishReason reason) {
  absl::MutexLock lock(&mu_);
  switch (reason) {
    case FinishReason::kStop: ++finished_.stop; break;
    case FinishReason::kLength: ++finished_.length; break;
    case FinishReason::kAbort: ++finished_.abort; break;
    case FinishReason::kNone: break;  // not finished
  }
}

void ServingEngine::CountErrors(int64_t n) {
  absl::MutexLock lock(&mu_);
  finished_.error += n;
}

void ServingEngine::Publish() {
  const int running = static_cast<int>(active_.size());
  const int64_t free_blocks = scheduler_->block_manager().num_free_blocks();
  absl::MutexLock lock(&mu_);
  num_running_ = running;
  num_free_blocks_ = free_blocks;
  num_scheduler_waiting_ = scheduler_->num_waiting();
  prefix_queries_ = prefix_base_queries_ + scheduler_->block_manager().prefix_queries();
  prefix_hits_ = prefix_base_hits_ + scheduler_->block_manager().prefix_hits();
}

void ServingEngine::HealOrBreak(const absl::Status& failure) {
  absl::Status why_not;
  if (Heal(failure, &why_not)) return;
  Break(absl::UnavailableError(absl::StrCat(failure.message(), "; ", why_not.message())));
}

bool ServingEngine::Heal(const absl::Status& failure, absl::Status* why_not) {
  const RecoveryOptions& policy = options_.recovery;
  const auto now = std::chrono::steady_clock::now();
  while (!restart_times_.empty() && now - restart_times_.front() > policy.window) {
    restart_times_.pop_front();
  }
  {
    absl::MutexLock lock(&mu_);
    last_failure_ = std::string(failure.message());
  }
  int attempt = 0;
  absl::Status last = failure;
  while (true) {
    if (static_cast<int>(restart_times_.size()) >= policy.max_restarts) {
      *why_not = absl::UnavailableError(absl::StrCat(
          "not restarted: ", restart_times_.size(), " restart(s) within the last ",
          std::chrono::duration_cast<std::chrono::seconds>(policy.window).count(),
          " s (the budget is ", policy.max_restarts, ")",
          attempt > 0 ? absl::StrCat("; the last attempt failed: ", last.message()) : ""));
      absl::MutexLock lock(&mu_);
      healing_ = false;
      return false;
    }
    if (attempt == 0) {
      {
        absl::MutexLock lock(&mu_);
        healing_ = true;
        ++restarts_;  // operations queued for the old ranks are refused from here (BetweenSteps)
      }
      // The ranks' KV is gone with them: what ran is recomputed on the new ranks, or ends now.
      if (policy.fail_in_flight) {
        FailAll(failure);
      } else {
        scheduler_->RecomputeAll();
      }
      scheduler_->ResetPrefixCache();
      Publish();
    }
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) {
        *why_not = absl::UnavailableError("the server is shutting down");
        healing_ = false;
        return false;
      }
    }
    std::this_thread::sleep_for(policy.backoff * (1 << std::min<int>(attempt, 6)));
    restart_times_.push_back(std::chrono::steady_clock::now());
    ++attempt;
    last = executor_->Restart();
    if (absl::IsUnimplemented(last)) {
      restart_times_.pop_back();
      *why_not = absl::UnavailableError(absl::StrCat("not restarted: ", last.message()));
      absl::MutexLock lock(&mu_);
      healing_ = false;
      return false;
    }
    if (!last.ok()) continue;
    const uint64_t version = weights_->Restarted();
    absl::StatusOr<GroupInitResult> init =
        executor_->Init(weights_->config(), options_.num_threads, version);
    if (!init.ok()) {
      last = init.status();
      continue;
    }
    serving_version_ = version;
    scheduler_->SetWeightVersion(version);
    if (init->num_kv_blocks != num_kv_blocks_) {
      // Another cache size (memory changed): the scheduler's plan no longer holds.
      FailAll(absl::UnavailableError("the restarted ranks hold a KV cache of another size"));
      num_kv_blocks_ = init->num_kv_blocks;
      NewScheduler();
    }
    {
      absl::MutexLock lock(&mu_);
      healing_ = false;
      sleep_level_ = 0;
    }
    Publish();
    return true;
  }
}

void ServingEngine::Break(const absl::Status& error) {
  {
    absl::MutexLock lock(&mu_);
    if (broken_.ok()) broken_ = error;
  }
  FailAll(error);
}

void ServingEngine::Admit(std::deque<Queued> queued) {
  absl::Status broken;
  {
    absl::MutexLock lock(&mu_);
    broken = broken_;
  }
  const std::shared_ptr<const ServedModel> model = CurrentModel();
  for (Queued& q : queued) {
    GenerateDelta end;
    end.done = true;
    if (q.stream->cancelled()) {
      CountFinished(FinishReason::kAbort);
      continue;
    }
    if (!broken.ok()) {
      end.error = broken;
      q.stream->Push(std::move(end));
      CountErrors(1);
      continue;
    }
    if (!q.prompt.empty() && q.model->tokenizer() != model->tokenizer()) {
      // Tokenized before a switch to another tokenizer: the text is what the client sent.
      absl::StatusOr<std::vector<int32_t>> ids = EncodePrompt(*model, q.prompt);
      if (!ids.ok()) {
        end.error = ids.status();
        q.stream->Push(std::move(end));
        CountErrors(1);
        continue;
      }
      q.request.prompt_ids = std::move(*ids);
    }
    const int64_t prompt_tokens = static_cast<int64_t>(q.request.prompt_ids.size());
    const bool return_logits = q.request.return_logits;
    std::vector<std::string> stops = q.request.stop_strings;
    absl::StatusOr<int64_t> id = scheduler_->Add(std::move(q.request));
    if (!id.ok()) {
      end.error = id.status();
      q.stream->Push(std::move(end));
      CountErrors(1);
      continue;
    }
    Active& active = active_[*id];
    active.arrival = q.arrival;
    active.stream = std::move(q.stream);
    active.prompt_tokens = prompt_tokens;
    active.return_logits = return_logits;
    active.stops = StopStringMatcher(std::move(stops));
    active.tokenizer = model->tokenizer();
    if (active.tokenizer) {
      active.detokenizer =
          std::make_unique<tokenizer::IncrementalDetokenizer>(active.tokenizer.get(), true);
    }
  }
  Publish();
}

std::string ServingEngine::FinalText(Active& active) {
  std::string text;
  if (active.detokenizer) {
    absl::StatusOr<std::string> rest = active.detokenizer->Flush();
    if (rest.ok()) text = active.stops.Feed(*rest);
  }
  return text + active.stops.Flush();
}

void ServingEngine::EmitToken(Active& active, int32_t token, GenerateDelta& delta) {
  delta.token_ids.push_back(token);
  ++active.completion_tokens;
  if (active.detokenizer) {
    absl::StatusOr<std::string> text = active.detokenizer->Next(token);
    // An id the tokenizer lacks adds no text.
    if (text.ok()) delta.text += active.stops.Feed(*text);
  }
}

void ServingEngine::RunStep() {
  const auto start = std::chrono::steady_clock::now();
  StepInput step = scheduler_->Schedule();
  Publish();  // who waits changed: Submit's --max-waiting check reads it before the step ends
  step.weight_version = serving_version_;
  if (step.sequences.empty()) {
    FailAll(absl::InternalError("the scheduler has work but scheduled nothing"));
    return;
  }
  StepStats stats;
  stats.num_sequences = static_cast<int64_t>(step.sequences.size());
  for (const SequenceStep& s : step.sequences) {
    const int64_t n = static_cast<int64_t>(s.token_ids.size());
    stats.num_tokens += n;
    // A prompt chunk: several tokens, or one that is not sampled (a prompt's non-final chunk).
    if (n > 1 || !s.sample) stats.num_prefill_tokens += n;
    auto it = active_.find(s.seq_id);
    if (it == active_.end()) continue;
    if (s.sample && it->second.return_logits) step.return_logits = true;
    if (!it->second.scheduled) {
      it->second.scheduled = true;
      absl::MutexLock lock(&mu_);
      queue_time_.Add(std::chrono::duration<double>(start - it->second.arrival).count());
    }
  }
  absl::StatusOr<StepOutput> out = executor_->Step(step);
  if (!out.ok()) {
    absl::Status error = out.status();
    absl::Status broken = executor_->Health();
    if (!broken.ok()) {
      HealOrBreak(absl::UnavailableError(std::string(broken.message())));
      return;
    }
    FailAll(error);
    return;
  }
  std::map<int64_t, GenerateDelta> deltas;
  for (size_t i = 0; i < out->seq_ids.size(); ++i) deltas[out->seq_ids[i]].weight_version = serving_version_;
  const bool have_logits = step.return_logits && out->logits.defined() &&
                           out->logits.size(0) == static_cast<int64_t>(out->tokens.size());
  for (size_t i = 0; i < out->tokens.size(); ++i) {
    auto it = active_.find(out->seq_ids[i]);
    if (it == active_.end()) continue;
    GenerateDelta& delta = deltas[it->first];
    EmitToken(it->second, out->tokens[i], delta);
    if (i < out->logprobs.size() && out->logprobs[i].present) {
      delta.logprobs.push_back(std::move(out->logprobs[i]));
    }
    if (have_logits && it->second.return_logits) {
      const int64_t vocab = out->logits.size(1);
      const float* row = out->logits.data<float>() + static_cast<int64_t>(i) * vocab;
      delta.logits.emplace_back(row, row + vocab);
    }
  }
  int64_t preempted = 0;  // of the sequences that finished this step
  for (const GenerationResult& r : scheduler_->Update(step, *out)) {
    preempted += r.num_preemptions;
    auto it = active_.find(r.request_id);
    if (it == active_.end()) continue;
    Active& active = it->second;
    GenerateDelta& delta = deltas[r.request_id];
    const bool stopped_before = active.stops.stopped();
    delta.text += FinalText(active);
    delta.done = true;
    delta.weight_version = serving_version_;
    // A stop string in the last text outranks the scheduler's reason (length, eos).
    delta.finish_reason = active.stops.stopped() || stopped_before ? FinishReason::kStop
                                                                   : r.finish_reason;
    delta.prompt_tokens = active.prompt_tokens;
    delta.completion_tokens = active.completion_tokens;
    CountFinished(delta.finish_reason);
  }
  // Sequences whose text reached a stop string end now; their blocks are freed.
  for (auto& [id, delta] : deltas) {
    auto it = active_.find(id);
    if (delta.done || it == active_.end() || !it->second.stops.stopped()) continue;
    (void)scheduler_->Abort(id);
    delta.done = true;
    delta.weight_version = serving_version_;
    delta.finish_reason = FinishReason::kStop;
    delta.prompt_tokens = it->second.prompt_tokens;
    delta.completion_tokens = it->second.completion_tokens;
    CountFinished(FinishReason::kStop);
  }
  const auto now = std::chrono::steady_clock::now();
  {
    absl::MutexLock lock(&mu_);
    generation_tokens_total_ += static_cast<int64_t>(out->tokens.size());
    for (auto& [id, delta] : deltas) {
      auto found = active_.find(id);
      if (found == active_.end()) continue;
      Active& active = found->second;
      auto seconds = [](auto d) { return std::chrono::duration<double>(d).count(); };
      if (!delta.token_ids.empty() || delta.done) {
        if (active.last_token == std::chrono::steady_clock::time_point()) {
          ttft_.Add(seconds(now - active.arrival));
        } else {
          itl_.Add(seconds(now - active.last_token));
        }
        active.last_token = now;
      }
      if (delta.done) {
        e2e_.Add(seconds(now - active.arrival));
        prompt_tokens_total_ += active.prompt_tokens;
      }
    }
  }
  for (auto& [id, delta] : deltas) {
    auto it = active_.find(id);
    const bool done = delta.done;
    it->second.stream->Push(std::move(delta));
    if (done) active_.erase(it);
  }
  {
    absl::MutexLock lock(&mu_);
    ++steps_;
    preemptions_ += preempted;
  }
  Publish();
  if (options_.on_step) {
    stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    options_.on_step(stats);
  }
}

void ServingEngine::FailAll(const absl::Status& error) {
  for (auto& [id, active] : active_) {
    GenerateDelta end;
    end.done = true;
    end.error = error;
    end.prompt_tokens = active.prompt_tokens;
    end.completion_tokens = active.completion_tokens;
    active.stream->Push(std::move(end));
  }
  CountErrors(static_cast<int64_t>(active_.size()));
  active_.clear();
  NewScheduler();  // publishes 0 running, every block free
  std::deque<Queued> queued;
  {
    absl::MutexLock lock(&mu_);
    if (!stopping_ && broken_.ok()) return;  // a one-off failure: queued requests still run
    queued.swap(queue_);
  }
  for (Queued& q : queued) {
    GenerateDelta end;
    end.done = true;
    end.error = error;
    q.stream->Push(std::move(end));
  }
  CountErrors(static_cast<int64_t>(queued.size()));
}

void ServingEngine::Stop() {
  absl::MutexLock stop_lock(&stop_mu_);
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
  if (executor_) executor_->Stop();
}

}  // namespace loom
