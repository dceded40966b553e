// Continuous batching: decides which sequences run in each step and with which KV blocks.
//
// Every step first gives each running sequence its next decode token, then admits waiting
// sequences' prompts (in chunks when a prompt is longer than the token budget), within
// max_num_seqs and max_num_batched_tokens. When the KV cache cannot hold a running sequence's
// next token, the most recently admitted running sequence is preempted: its blocks are freed and
// it waits to be recomputed from its prompt plus the tokens it already produced, so no request
// fails and seeded sampling is unchanged. A sequence can be aborted at any time between steps
// (its client went away): its blocks are free at once. Not thread-safe: the engine loop owns it.
#ifndef LOOM_CONTROLLER_SCHEDULER_H_
#define LOOM_CONTROLLER_SCHEDULER_H_

#include <deque>
#include <map>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "common/engine_config.h"
#include "controller/block_manager.h"
#include "controller/request.h"
#include "common/step.h"

namespace loom {

struct Sequence {
  int64_t id = 0;
  GenerationRequest request;
  std::vector<int32_t> output_ids;
  int64_t num_computed = 0;  // tokens whose KV is in the cache
  int64_t num_preemptions = 0;
  int64_t published_blocks = 0;  // full blocks offered to the prefix cache
  FinishReason finish_reason = FinishReason::kNone;

  int64_t num_tokens() const {
    return static_cast<int64_t>(request.prompt_ids.size() + output_ids.size());
  }
  int32_t token_at(int64_t i) const {
    const int64_t p = static_cast<int64_t>(request.prompt_ids.size());
    return i < p ? request.prompt_ids[i] : output_ids[i - p];
  }
};

class Scheduler {
 public:
  // Prefix caching as config.enable_prefix_caching says (block_manager.h).
  Scheduler(const SchedulerConfig& config, int64_t max_model_len, int64_t num_blocks,
            int64_t block_size, std::vector<int32_t> eos_token_ids);
  // The weight version the KV computed from now on belongs to: cached blocks of other versions
  // are never found again (they are evicted as blocks are needed).
  void SetWeightVersion(uint64_t version) { blocks_.SetSalt(version); }
  // The KV cache was emptied (a sleep): no cached block may be matched again.
  void ResetPrefixCache() { blocks_.ResetPrefixCache(); }

  // Queues a request; InvalidArgument when it can never run (empty prompt, longer than
  // max_model_len, more KV than the whole cache).
  absl::StatusOr<int64_t> Add(GenerationRequest request);
  bool HasWork() const { return !waiting_.empty() || !running_.empty(); }
  // Sequences queued (new or preempted) and not running.
  int64_t num_waiting() const { return static_cast<int64_t>(waiting_.size()); }

  // The next step; empty when nothing can run.
  StepInput Schedule();
  // Applies a step's sampled tokens; returns the sequences that finished (and frees them).
  std::vector<GenerationResult> Update(const StepInput& step, const StepOutput& output);

  // At a weight switch: every sequence with KV in the cache gives it up and waits to be
  // recomputed (prompt plus the tokens it produced) with the new weights. Returns how many.
  int64_t RecomputeAll();
  // At a weight switch under the abort policy: every sequence that has run (KV or output from
  // the old weights) finishes with FinishReason::kAbort and is freed; the others stay queued.
  std::vector<GenerationResult> AbortStarted();
  // Ends sequence `seq_id` now (running or waiting) with FinishReason::kAbort and frees its
  // blocks. NotFound for an id the scheduler does not hold (already finished).
  absl::StatusOr<GenerationResult> Abort(int64_t seq_id);
  // At a switch to another model directory: later checks use its max_model_len and eos ids.
  // Sequences that no longer fit (prompt plus output at or past `max_model_len`) finish with
  // FinishReason::kLength and are freed; they are returned. Later Adds are checked against it.
  std::vector<GenerationResult> SetModelLimits(int64_t max_model_len,
                                               std::vector<int32_t> eos_token_ids);

  const BlockManager& block_manager() const { return blocks_; }

 private:
  bool Finished(const Sequence& seq) const;
  void Preempt(int64_t seq_id);
  SequenceStep MakeStep(const Sequence& seq, int64_t num_new) const;
  // Every token of the sequence: prompt then output.
  static std::vector<int32_t> AllTokens(const Sequence& seq);

  SchedulerConfig config_;
  int64_t max_model_len_;
  BlockManager blocks_;
  std::vector<int32_t> eos_token_ids_;
  int64_t next_id_ = 0;
  std::map<int64_t, std::unique_ptr<Sequence>> sequences_;
  std::deque<int64_t> waiting_;
  std::vector<int64_t> running_;  // in admission order
};

}  // namespace loom

#endif  // LOOM_CONTROLLER_SCHEDULER_H_
