#include "controller/engine.h"

#include <algorithm>
#include <map>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "kernels/threading.h"
#include "worker/loader/weight_dtype.h"

namespace loom {

absl::StatusOr<std::unique_ptr<Engine>> Engine::Create(const EngineConfig& config) {
  LOOM_RETURN_IF_ERROR(config.Validate());
  kernels::SetNumThreads(config.num_threads);
  auto engine = std::make_unique<Engine>();
  engine->config_ = config;
  LOOM_ASSIGN_OR_RETURN(engine->model_config_, ModelConfig::FromModelDir(config.load.model));
  const ModelConfig& mc = engine->model_config_;
  engine->max_model_len_ = config.scheduler.max_model_len > 0
                               ? std::min(config.scheduler.max_model_len, mc.MaxContextLength())
                               : mc.MaxContextLength();
  ModelRunnerOptions options;
  LOOM_ASSIGN_OR_RETURN(options.decoder.weight_dtype, ResolveWeightDType(config.load, mc));
  options.block_size = config.cache.block_size;
  options.kv_cache_bytes = config.cache.kv_cache_bytes;
  LOOM_ASSIGN_OR_RETURN(engine->runner_, ModelRunner::Create(mc, options));
  SingleRankCommunicator single;
  LOOM_ASSIGN_OR_RETURN(engine->load_report_,
                        LoadWeights(config.load, engine->runner_->decoder(), single));
  std::vector<int32_t> eos(mc.eos_token_ids.begin(), mc.eos_token_ids.end());
  engine->scheduler_ = std::make_unique<Scheduler>(config.scheduler, engine->max_model_len_,
                                                   engine->runner_->num_kv_blocks(),
                                                   config.cache.block_size, std::move(eos));
  return engine;
}

absl::StatusOr<int64_t> Engine::Add(GenerationRequest request) {
  for (int32_t id : request.prompt_ids) {
    if (id < 0 || id >= model_config_.vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat("prompt token id ", id, " outside [0, ",
                                                     model_config_.vocab_size, ")"));
    }
  }
  return scheduler_->Add(std::move(request));
}

absl::StatusOr<Engine::StepStats> Engine::Step(
    std::vector<GenerationResult>& finished,
    const std::function<void(int64_t, int32_t)>& on_token) {
  StepInput step = scheduler_->Schedule();
  StepStats stats;
  if (step.sequences.empty()) return stats;
  LOOM_ASSIGN_OR_RETURN(StepOutput out, runner_->Execute(step));
  for (const SequenceStep& s : step.sequences) {
    stats.num_tokens += static_cast<int64_t>(s.token_ids.size());
    if (s.token_ids.size() > 1 || !s.sample) stats.num_prefill_tokens += s.token_ids.size();
  }
  stats.num_sequences = static_cast<int64_t>(step.sequences.size());
  if (on_token) {
    for (size_t i = 0; i < out.tokens.size(); ++i) on_token(out.seq_ids[i], out.tokens[i]);
  }
  for (GenerationResult& r : scheduler_->Update(step, out)) finished.push_back(std::move(r));
  return stats;
}

absl::StatusOr<std::vector<GenerationResult>> Engine::Generate(
    const std::vector<GenerationRequest>& requests) {
  std::map<int64_t, size_t> order;
  for (size_t i = 0; i < requests.size(); ++i) {
    LOOM_ASSIGN_OR_RETURN(int64_t id, Add(requests[i]));
    order[id] = i;
  }
  std::vector<GenerationResult> results(requests.size());
  std::vector<GenerationResult> finished;
  while (scheduler_->HasWork()) {
    LOOM_ASSIGN_OR_RETURN(StepStats stats, Step(finished));
    if (stats.num_sequences == 0) {
      return absl::InternalError("scheduler has work but scheduled nothing");
    }
  }
  for (GenerationResult& r : finished) {
    auto it = order.find(r.request_id);
    if (it != order.end()) results[it->second] = std::move(r);
  }
  return results;
}

}  // namespace loom
