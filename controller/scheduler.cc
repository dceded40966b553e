#include "controller/scheduler.h"

#include <algorithm>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace loom {

const char* FinishReasonName(FinishReason reason) {
  switch (reason) {
    case FinishReason::kNone: return "none";
    case FinishReason::kLength: return "length";
    case FinishReason::kStop: return "stop";
    case FinishReason::kAbort: return "abort";
  }
  return "?";
}

Scheduler::Scheduler(const SchedulerConfig& config, int64_t max_model_len, int64_t num_blocks,
                     int64_t block_size, std::vector<int32_t> eos_token_ids)
    : config_(config),
      max_model_len_(max_model_len),
      blocks_(num_blocks, block_size, config.enable_prefix_caching),
      eos_token_ids_(std::move(eos_token_ids)) {}

absl::StatusOr<int64_t> Scheduler::Add(GenerationRequest request) {
  const int64_t prompt = static_cast<int64_t>(request.prompt_ids.size());
  if (prompt == 0) return absl::InvalidArgumentError("the prompt is empty");
  if (request.max_tokens < 1) return absl::InvalidArgumentError("max_tokens must be >= 1");
  if (prompt >= max_model_len_) {
    return absl::InvalidArgumentError(absl::StrCat("prompt of ", prompt,
                                                   " tokens leaves no room in max_model_len ",
                                                   max_model_len_));
  }
  LOOM_RETURN_IF_ERROR(ValidateSamplingParams(request.sampling));
  const int64_t longest = std::min(prompt + request.max_tokens, max_model_len_);
  if (blocks_.BlocksFor(longest) > blocks_.num_blocks()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a sequence of ", longest, " tokens needs ", blocks_.BlocksFor(longest),
        " KV blocks but the cache has ", blocks_.num_blocks(), "; raise the KV cache memory"));
  }
  auto seq = std::make_unique<Sequence>();
  seq->id = next_id_++;
  seq->request = std::move(request);
  waiting_.push_back(seq->id);
  const int64_t id = seq->id;
  sequences_[id] = std::move(seq);
  return id;
}

SequenceStep Scheduler::MakeStep(const Sequence& seq, int64_t num_new) const {
  SequenceStep s;
  s.seq_id = seq.id;
  for (int64_t i = seq.num_computed; i < seq.num_computed + num_new; ++i) {
    s.token_ids.push_back(seq.token_at(i));
  }
  s.start_position = static_cast<int32_t>(seq.num_computed);
  s.block_table = blocks_.BlockTable(seq.id);
  s.sample = seq.num_computed + num_new == seq.num_tokens();
  s.sampling = seq.request.sampling;
  s.sample_index = seq.output_ids.size();
  if (s.sample && s.sampling.has_penalties()) {
    // Distinct tokens in first-seen order, with their output counts.
    absl::flat_hash_map<int32_t, int32_t> index;
    for (int64_t i = 0; i < seq.num_tokens(); ++i) {
      const int32_t t = seq.token_at(i);
      auto [it, added] = index.try_emplace(t, static_cast<int32_t>(s.penalty_ids.size()));
      if (added) {
        s.penalty_ids.push_back(t);
        s.penalty_output_counts.push_back(0);
      }
      if (i >= static_cast<int64_t>(seq.request.prompt_ids.size())) ++s.penalty_output_counts[it->second];
    }
  }
  return s;
}

std::vector<int32_t> Scheduler::AllTokens(const Sequence& seq) {
  std::vector<int32_t> tokens = seq.request.prompt_ids;
  tokens.insert(tokens.end(), seq.output_ids.begin(), seq.output_ids.end());
  return tokens;
}

void Scheduler::Preempt(int64_t seq_id) {
  Sequence& seq = *sequences_[seq_id];
  blocks_.Free(seq_id);
  seq.num_computed = 0;
  seq.published_blocks = 0;
  ++seq.num_preemptions;
  running_.erase(std::find(running_.begin(), running_.end(), seq_id));
  waiting_.push_front(seq_id);
}

int64_t Scheduler::RecomputeAll() {
  // Youngest first, so the waiting queue keeps admission order at its front.
  const int64_t n = static_cast<int64_t>(running_.size());
  while (!running_.empty()) Preempt(running_.back());
  return n;
}

std::vector<GenerationResult> Scheduler::AbortStarted() {
  std::vector<GenerationResult> results;
  auto finish = [&](int64_t id) {
    Sequence& seq = *sequences_[id];
    results.push_back({seq.id, seq.output_ids, FinishReason::kAbort, seq.num_preemptions});
    blocks_.Free(id);
    sequences_.erase(id);
  };
  for (int64_t id : running_) finish(id);
  running_.clear();
  std::deque<int64_t> kept;
  for (int64_t id : waiting_) {
    if (sequences_[id]->output_ids.empty()) {
      kept.push_back(id);
    } else {
      finish(id);
    }
  }
  waiting_.swap(kept);
  return results;
}

absl::StatusOr<GenerationResult> Scheduler::Abort(int64_t seq_id) {
  auto it = sequences_.find(seq_id);
  if (it == sequences_.end()) {
    return absl::NotFoundError(absl::StrCat("no sequence ", seq_id, " in the scheduler"));
  }
  Sequence& seq = *it->second;
  GenerationResult result{seq.id, std::move(seq.output_ids), FinishReason::kAbort,
                          seq.num_preemptions};
  blocks_.Free(seq_id);
  if (auto r = std::find(running_.begin(), running_.end(), seq_id); r != running_.end()) {
    running_.erase(r);
  }
  if (auto w = std::find(waiting_.begin(), waiting_.end(), seq_id); w != waiting_.end()) {
    waiting_.erase(w);
  }
  sequences_.erase(it);
  return result;
}

std::vector<GenerationResult> Scheduler::SetModelLimits(int64_t max_model_len,
                                                        std::vector<int32_t> eos_token_ids) {
  max_model_len_ = max_model_len;
  eos_token_ids_ = std::move(eos_token_ids);
  std::vector<int64_t> too_long;
  for (const auto& [id, seq] : sequences_) {
    if (seq->num_tokens() >= max_model_len_) too_long.push_back(id);
  }
  std::vector<GenerationResult> finished;
  for (int64_t id : too_long) {
    GenerationResult r = *Abort(id);
    r.finish_reason = FinishReason::kLength;
    finished.push_back(std::move(r));
  }
  return finished;
}

StepInput Scheduler::Schedule() {
  StepInput step;
  int64_t budget = config_.max_num_batched_tokens;
  // Running sequences first, oldest first, so the youngest is the one preempted.
  for (size_t i = 0; i < running_.size() && budget > 0;) {
    Sequence& seq = *sequences_[running_[i]];
    const int64_t chunk = std::min(seq.num_tokens() - seq.num_computed, budget);
    while (!blocks_.CanGrow(seq.id, seq.num_computed + chunk) && running_.back() != seq.id) {
      Preempt(running_.back());
    }
    if (!blocks_.CanGrow(seq.id, seq.num_computed + chunk)) {
      Preempt(seq.id);  // it is the youngest left; it waits for memory
      continue;
    }
    (void)blocks_.Grow(seq.id, seq.num_computed + chunk);
    step.sequences.push_back(MakeStep(seq, chunk));
    budget -= chunk;
    ++i;
  }
  // Then admit waiting prompts while seats, tokens and blocks allow; admission never preempts.
  while (!waiting_.empty() && budget > 0 &&
         static_cast<int64_t>(running_.size()) < config_.max_num_seqs) {
    Sequence& seq = *sequences_[waiting_.front()];
    int64_t matched = 0;
    if (seq.num_computed == 0 && blocks_.prefix_caching()) {
      // Leading blocks another request computed with these weights: reused, not computed. The
      // last token is always computed, for its logits.
      matched = blocks_.MatchPrefix(seq.id, AllTokens(seq), seq.num_tokens() - 1);
      seq.num_computed = matched;
      seq.published_blocks = matched / blocks_.block_size();
    }
    const int64_t chunk = std::min(seq.num_tokens() - seq.num_computed, budget);
    if (!blocks_.CanGrow(seq.id, seq.num_computed + chunk)) {
      if (matched > 0) {  // give the shared blocks back; the next try matches again
        blocks_.Free(seq.id);
        seq.num_computed = 0;
        seq.published_blocks = 0;
      }
      break;
    }
    (void)blocks_.Grow(seq.id, seq.num_computed + chunk);
    waiting_.pop_front();
    running_.push_back(seq.id);
    step.sequences.push_back(MakeStep(seq, chunk));
    budget -= chunk;
  }
  return step;
}

bool Scheduler::Finished(const Sequence& seq) const {
  const GenerationRequest& r = seq.request;
  const int32_t last = seq.output_ids.back();
  if (!r.ignore_eos &&
      std::find(eos_token_ids_.begin(), eos_token_ids_.end(), last) != eos_token_ids_.end()) {
    return true;
  }
  return std::find(r.stop_token_ids.begin(), r.stop_token_ids.end(), last) !=
         r.stop_token_ids.end();
}

std::vector<GenerationResult> Scheduler::Update(const StepInput& step, const StepOutput& output) {
  std::vector<GenerationResult> finished;
  size_t sampled = 0;
  for (const SequenceStep& s : step.sequences) {
    Sequence& seq = *sequences_[s.seq_id];
    seq.num_computed += static_cast<int64_t>(s.token_ids.size());
    // Blocks this step filled become findable by later requests.
    if (blocks_.prefix_caching() && seq.num_computed / blocks_.block_size() > seq.published_blocks) {
      blocks_.Publish(seq.id, AllTokens(seq), seq.num_computed);
      seq.published_blocks = seq.num_computed / blocks_.block_size();
    }
    if (!s.sample) continue;
    seq.output_ids.push_back(output.tokens[sampled++]);
    if (Finished(seq)) {
      seq.finish_reason = FinishReason::kStop;
    } else if (static_cast<int64_t>(seq.output_ids.size()) >= seq.request.max_tokens ||
               seq.num_tokens() >= max_model_len_) {
      seq.finish_reason = FinishReason::kLength;
    } else {
      continue;
    }
    blocks_.Free(seq.id);
    running_.erase(std::find(running_.begin(), running_.end(), seq.id));
    finished.push_back({seq.id, std::move(seq.output_ids), seq.finish_reason,
                        seq.num_preemptions});
    sequences_.erase(seq.id);
  }
  return finished;
}

}  // namespace loom
