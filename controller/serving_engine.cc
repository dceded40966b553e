#include "controller/serving_engine.h"

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "common/status.h"

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

absl::StatusOr<std::unique_ptr<ServingEngine>> ServingEngine::Start(
    const ServingEngineOptions& options) {
  LOOM_RETURN_IF_ERROR(options.config.Validate());
  std::unique_ptr<ServingEngine> engine(new ServingEngine(options));
  LOOM_ASSIGN_OR_RETURN(std::shared_ptr<const ServedModel> model,
                        ServedModel::Load(options.config.load.model, options.config.scheduler));
  engine->model_config_ = model->config();
  {
    absl::MutexLock lock(&engine->mu_);
    engine->model_ = model;
  }

  LOOM_ASSIGN_OR_RETURN(engine->supervisor_, Supervisor::Start(options.supervisor));
  WorkerGroupOptions group;
  group.addresses = engine->supervisor_->worker_addresses();
  group.init_timeout = options.init_timeout;
  Supervisor* supervisor = engine->supervisor_.get();
  group.rank_status = [supervisor](int rank) { return supervisor->RankStatus(rank); };
  LOOM_ASSIGN_OR_RETURN(engine->group_, WorkerGroup::Connect(group));
  std::atomic<bool> initialised{false};
  std::thread progress;
  if (options.on_load_progress) {
    progress = std::thread([&] {
      WorkerGroup& group = *engine->group_;
      while (!initialised.load()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(250));
        std::vector<nlohmann::json> ranks(group.world_size());
        absl::StatusOr<std::vector<RankResult>> d =
            group.CollectiveCall("describe", "{}", std::chrono::seconds(1));
        if (!d.ok() || initialised.load()) continue;
        for (const RankResult& r : *d) ranks[r.rank] = r.result.value("weights", nlohmann::json());
        options.on_load_progress(ranks);
      }
    });
  }
  absl::StatusOr<GroupInitResult> init = engine->group_->Init(options.config, options.num_threads);
  initialised = true;
  if (progress.joinable()) progress.join();
  LOOM_RETURN_IF_ERROR(init.status());
  engine->num_kv_blocks_ = init->num_kv_blocks;
  engine->NewScheduler();
  WeightCoordinatorHooks hooks;
  ServingEngine* e = engine.get();
  hooks.call = [e](const std::string& method, const std::string& args,
                   std::chrono::milliseconds timeout) -> absl::StatusOr<std::vector<RankResult>> {
    absl::ReaderMutexLock lock(&e->group_mu_);
    if (e->group_ == nullptr) return absl::UnavailableError("the server is shutting down");
    return e->group_->CollectiveCall(method, args, timeout);
  };
  hooks.between_steps = [e](std::function<absl::Status()> fn) { return e->BetweenSteps(fn); };
  hooks.switched = [e](uint64_t version, SwitchPolicy policy,
                       std::shared_ptr<const ServedModel> model) {
    e->Switched(version, policy, std::move(model));
  };
  hooks.broken = [e](const absl::Status& error) { e->Break(error); };
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
  scheduler_ = std::make_unique<Scheduler>(options_.config.scheduler, model->max_model_len(),
                                           num_kv_blocks_, options_.config.cache.block_size,
                                           model->eos_token_ids());
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
  LOOM_RETURN_IF_ERROR(kernels::ValidateSamplingParams(g.sampling));
  // A cancel only raises a flag the engine thread looks at before its next step.
  auto stream = std::make_shared<RequestStream>([this] {
    absl::MutexLock lock(&mu_);
    cancel_pending_ = true;
  });
  absl::MutexLock lock(&mu_);
  if (stopping_) return absl::UnavailableError("the server is shutting down");
  if (!broken_.ok()) return broken_;
  queue_.push_back({std::move(g), stream, std::move(prompt), model});
  return stream;
}

absl::StatusOr<std::vector<RankResult>> ServingEngine::CollectiveCall(
    const std::string& method, const std::string& args_json, std::chrono::milliseconds timeout,
    const std::vector<int>& ranks) {
  if (WeightCoordinator::Handles(method)) {
    if (!ranks.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("method ", method, " changes the weights of every rank; it cannot be sent "
                       "to some ranks only"));
    }
    return weights_->Call(method, args_json, timeout);
  }
  absl::ReaderMutexLock lock(&group_mu_);
  if (group_ == nullptr) return absl::UnavailableError("the server is shutting down");
  return group_->CollectiveCall(method, args_json, timeout, ranks);
}

absl::Status ServingEngine::CheckRanks() const {
  for (int r = 0; r < supervisor_->world_size(); ++r) {
    absl::Status s = supervisor_->RankStatus(r);
    if (!s.ok()) return absl::UnavailableError(std::string(s.message()));
  }
  return group_->broken();
}

EngineStatus ServingEngine::Status() const {
  EngineStatus status;
  status.world_size = supervisor_->world_size();
  status.num_kv_blocks = num_kv_blocks_;
  std::shared_ptr<const ServedModel> model;
  {
    absl::MutexLock lock(&mu_);
    model = model_;
    status.running_requests = num_running_;
    status.waiting_requests = static_cast<int>(queue_.size());
    status.num_free_kv_blocks = num_free_blocks_;
    status.steps = steps_;
    status.finished = finished_;
    status.broken = broken_;
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
  status.controller_address = supervisor_->controller_address();
  status.session_id = supervisor_->session_id();
  std::vector<nlohmann::json> described(status.world_size);
  {
    // What each rank says about its weights; a rank busy loading still answers (describe
    // runs beside loads), a dead one simply has none.
    absl::ReaderMutexLock lock(&group_mu_);
    if (group_ != nullptr) {
      for (int r = 0; r < status.world_size; ++r) {
        absl::StatusOr<std::vector<RankResult>> d =
            group_->CollectiveCall("describe", "{}", std::chrono::seconds(2), {r});
        if (d.ok() && !d->empty()) described[r] = (*d)[0].result.value("weights", nlohmann::json());
      }
    }
  }
  const auto regs = supervisor_->controller_service().Registrations();
  for (int r = 0; r < status.world_size; ++r) {
    RankState& rank = status.ranks.emplace_back();
    rank.rank = r;
    if (regs[r]) {
      rank.pid = regs[r]->pid;
      rank.device = regs[r]->device;
      rank.address = regs[r]->address;
    }
    absl::Status s = supervisor_->RankStatus(r);
    if (s.ok()) {
      rank.state = "ready";
    } else {
      rank.state = absl::StrContains(s.message(), "exited with code 0") ? "exited" : "failed";
      rank.error = std::string(s.message());
    }
    rank.weights = described[r];
  }
  return status;
}

void ServingEngine::Loop() {
  while (true) {
    std::deque<Queued> queued;
    std::deque<std::function<void()>> between;
    bool cancelled = false;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
        return stopping_ || !queue_.empty() || !between_steps_.empty() || cancel_pending_;
      };
      if (!scheduler_->HasWork()) {
        mu_.AwaitWithTimeout(absl::Condition(&ready), absl::FromChrono(kHealthPollInterval));
      }
      if (stopping_) break;
      queued.swap(queue_);
      between.swap(between_steps_);
      cancelled = std::exchange(cancel_pending_, false);
    }
    // Before anything else runs: a client that went away is in no later step.
    if (cancelled) DropCancelled();
    for (auto& fn : between) fn();
    if (!queued.empty()) Admit(std::move(queued));
    if (scheduler_->HasWork()) {
      RunStep();
    } else {
      absl::Status health = CheckRanks();
      if (!health.ok()) {
        absl::MutexLock lock(&mu_);
        if (broken_.ok()) broken_ = health;
      }
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
    between_steps_.push_back([this, fn, done, result] {
      bool stopping;
      {
        absl::MutexLock lock(&mu_);
        stopping = stopping_;
      }
      *result = stopping ? absl::UnavailableError("the server is shutting down") : fn();
      done->Notify();
    });
  }
  done->WaitForNotification();
  return *result;
}

void ServingEngine::Switched(uint64_t version, SwitchPolicy policy,
                             std::shared_ptr<const ServedModel> model) {
  serving_version_ = version;
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

void ServingEngine::EndActive(int64_t id, FinishReason reason) {
  auto it = active_.find(id);
  if (it == active_.end()) return;
  Active& active = it->second;
  GenerateDelta end;
  if (active.detokenizer) {
    absl::StatusOr<std::string> rest = active.detokenizer->Flush();
    if (rest.ok()) end.text = *rest;
  }
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
    absl::StatusOr<int64_t> id = scheduler_->Add(std::move(q.request));
    if (!id.ok()) {
      end.error = id.status();
      q.stream->Push(std::move(end));
      CountErrors(1);
      continue;
    }
    Active& active = active_[*id];
    active.stream = std::move(q.stream);
    active.prompt_tokens = prompt_tokens;
    active.tokenizer = model->tokenizer();
    if (active.tokenizer) {
      active.detokenizer =
          std::make_unique<tokenizer::IncrementalDetokenizer>(active.tokenizer.get(), true);
    }
  }
  Publish();
}

void ServingEngine::EmitToken(Active& active, int32_t token, GenerateDelta& delta) {
  delta.token_ids.push_back(token);
  ++active.completion_tokens;
  if (active.detokenizer) {
    absl::StatusOr<std::string> text = active.detokenizer->Next(token);
    if (text.ok()) delta.text += *text;  // an id the tokenizer lacks adds no text
  }
}

void ServingEngine::RunStep() {
  StepInput step = scheduler_->Schedule();
  step.weight_version = serving_version_;
  if (step.sequences.empty()) {
    FailAll(absl::InternalError("the scheduler has work but scheduled nothing"));
    return;
  }
  absl::StatusOr<StepOutput> out = group_->Step(step);
  if (!out.ok()) {
    absl::Status error = out.status();
    absl::Status broken = group_->broken();
    if (!broken.ok()) {
      absl::MutexLock lock(&mu_);
      if (broken_.ok()) broken_ = absl::UnavailableError(std::string(broken.message()));
      error = broken_;
    }
    FailAll(error);
    return;
  }
  std::map<int64_t, GenerateDelta> deltas;
  for (size_t i = 0; i < out->seq_ids.size(); ++i) deltas[out->seq_ids[i]].weight_version = serving_version_;
  for (size_t i = 0; i < out->tokens.size(); ++i) {
    auto it = active_.find(out->seq_ids[i]);
    if (it != active_.end()) EmitToken(it->second, out->tokens[i], deltas[it->first]);
  }
  for (const GenerationResult& r : scheduler_->Update(step, *out)) {
    auto it = active_.find(r.request_id);
    if (it == active_.end()) continue;
    Active& active = it->second;
    GenerateDelta& delta = deltas[r.request_id];
    if (active.detokenizer) {
      absl::StatusOr<std::string> rest = active.detokenizer->Flush();
      if (rest.ok()) delta.text += *rest;
    }
    delta.done = true;
    delta.weight_version = serving_version_;
    delta.finish_reason = r.finish_reason;
    delta.prompt_tokens = active.prompt_tokens;
    delta.completion_tokens = active.completion_tokens;
    CountFinished(r.finish_reason);
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
  }
  Publish();
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
  {
    absl::WriterMutexLock lock(&group_mu_);
    group_.reset();
  }
  if (supervisor_) supervisor_->Stop();
}

}  // namespace loom
