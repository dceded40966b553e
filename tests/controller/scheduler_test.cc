#include "controller/scheduler.h"

#include <gtest/gtest.h>

namespace loom {
namespace {

SchedulerConfig Limits(int64_t seqs, int64_t tokens, bool prefix_caching = false) {
  SchedulerConfig c;
  c.max_num_seqs = seqs;
  c.max_num_batched_tokens = tokens;
  c.enable_prefix_caching = prefix_caching;
  return c;
}

GenerationRequest Request(int64_t prompt_len, int64_t max_tokens) {
  GenerationRequest r;
  for (int64_t i = 0; i < prompt_len; ++i) r.prompt_ids.push_back(static_cast<int32_t>(10 + i));
  r.max_tokens = max_tokens;
  return r;
}

// Pretends to be the model: every sampled token is `token`.
StepOutput Sampled(const StepInput& step, int32_t token) {
  StepOutput out;
  for (const SequenceStep& s : step.sequences) {
    if (!s.sample) continue;
    out.seq_ids.push_back(s.seq_id);
    out.tokens.push_back(token);
  }
  return out;
}

TEST(SchedulerTest, LongPromptIsPrefilledInChunksAndSampledOnceAtTheEnd) {
  Scheduler s(Limits(4, 4), 100, 64, 4, {});
  ASSERT_TRUE(s.Add(Request(10, 1)).ok());
  std::vector<std::pair<size_t, bool>> chunks;
  std::vector<GenerationResult> done;
  while (s.HasWork()) {
    StepInput step = s.Schedule();
    ASSERT_EQ(step.sequences.size(), 1u);
    chunks.push_back({step.sequences[0].token_ids.size(), step.sequences[0].sample});
    for (auto& r : s.Update(step, Sampled(step, 7))) done.push_back(r);
  }
  EXPECT_EQ(chunks, (std::vector<std::pair<size_t, bool>>{{4, false}, {4, false}, {2, true}}));
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].output_ids, std::vector<int32_t>{7});
  EXPECT_EQ(done[0].finish_reason, FinishReason::kLength);
}

TEST(SchedulerTest, StepsRespectSequenceAndTokenLimits) {
  Scheduler s(Limits(2, 8), 100, 64, 4, {});
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(s.Add(Request(3, 4)).ok());
  StepInput first = s.Schedule();
  EXPECT_EQ(first.sequences.size(), 2u);  // max_num_seqs
  int64_t tokens = 0;
  for (const auto& q : first.sequences) tokens += q.token_ids.size();
  EXPECT_LE(tokens, 8);
}

TEST(SchedulerTest, DecodeStepsCarryOnePositionAndGrowBlockTables) {
  Scheduler s(Limits(4, 64), 100, 64, 4, {});
  ASSERT_TRUE(s.Add(Request(4, 3)).ok());
  StepInput prefill = s.Schedule();
  EXPECT_EQ(prefill.sequences[0].block_table.size(), 1u);
  s.Update(prefill, Sampled(prefill, 5));
  StepInput decode = s.Schedule();
  ASSERT_EQ(decode.sequences.size(), 1u);
  EXPECT_EQ(decode.sequences[0].token_ids, std::vector<int32_t>{5});
  EXPECT_EQ(decode.sequences[0].start_position, 4);
  EXPECT_EQ(decode.sequences[0].block_table.size(), 2u);  // position 4 needs a second block
  EXPECT_EQ(decode.sequences[0].sample_index, 1u);
}

TEST(SchedulerTest, WhenBlocksRunOutTheYoungestIsPreemptedAndRecomputedNotFailed) {
  // 6 blocks of 2 slots; two sequences of 4-token prompts growing to 8 tokens need 8 blocks.
  Scheduler s(Limits(4, 64), 100, 6, 2, {});
  ASSERT_TRUE(s.Add(Request(4, 4)).ok());
  ASSERT_TRUE(s.Add(Request(4, 4)).ok());
  std::vector<GenerationResult> done;
  bool saw_recompute = false;
  int steps = 0;
  while (s.HasWork() && steps++ < 100) {
    StepInput step = s.Schedule();
    ASSERT_FALSE(step.sequences.empty());
    for (const auto& q : step.sequences) {
      // A recomputed sequence comes back with its prompt and its earlier outputs at position 0.
      if (q.start_position == 0 && q.token_ids.size() > 4) saw_recompute = true;
    }
    EXPECT_LE(s.block_manager().num_free_blocks(), 6);
    for (auto& r : s.Update(step, Sampled(step, 9))) done.push_back(r);
  }
  ASSERT_EQ(done.size(), 2u);
  EXPECT_TRUE(saw_recompute);
  int64_t preemptions = 0;
  for (const auto& r : done) {
    EXPECT_EQ(r.output_ids.size(), 4u);
    preemptions += r.num_preemptions;
  }
  EXPECT_GT(preemptions, 0);
  EXPECT_EQ(s.block_manager().num_free_blocks(), 6);  // everything returned
}

TEST(SchedulerTest, StopsOnEosAndStopIdsUnlessIgnoringEos) {
  Scheduler s(Limits(4, 64), 100, 64, 4, {2});
  GenerationRequest eos = Request(3, 10);
  GenerationRequest ignore = Request(3, 3);
  ignore.ignore_eos = true;
  GenerationRequest stop = Request(3, 10);
  stop.stop_token_ids = {2};
  stop.ignore_eos = true;
  ASSERT_TRUE(s.Add(eos).ok());
  ASSERT_TRUE(s.Add(ignore).ok());
  ASSERT_TRUE(s.Add(stop).ok());
  std::map<int64_t, GenerationResult> done;
  while (s.HasWork()) {
    StepInput step = s.Schedule();
    for (auto& r : s.Update(step, Sampled(step, 2))) done[r.request_id] = r;
  }
  EXPECT_EQ(done[0].finish_reason, FinishReason::kStop);
  EXPECT_EQ(done[0].output_ids.size(), 1u);
  EXPECT_EQ(done[1].finish_reason, FinishReason::kLength);
  EXPECT_EQ(done[1].output_ids.size(), 3u);
  EXPECT_EQ(done[2].finish_reason, FinishReason::kStop);
}

TEST(SchedulerTest, MaxModelLenEndsASequence) {
  Scheduler s(Limits(4, 64), 6, 64, 4, {});
  ASSERT_TRUE(s.Add(Request(4, 100)).ok());
  std::vector<GenerationResult> done;
  while (s.HasWork()) {
    StepInput step = s.Schedule();
    for (auto& r : s.Update(step, Sampled(step, 1))) done.push_back(r);
  }
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].output_ids.size(), 2u);
  EXPECT_EQ(done[0].finish_reason, FinishReason::kLength);
}

TEST(SchedulerTest, RejectsRequestsThatCanNeverRun) {
  Scheduler s(Limits(4, 64), 16, 2, 4, {});
  EXPECT_FALSE(s.Add(Request(0, 1)).ok());    // empty prompt
  EXPECT_FALSE(s.Add(Request(16, 1)).ok());   // no room in max_model_len
  EXPECT_FALSE(s.Add(Request(8, 4)).ok());    // 12 tokens need 3 blocks; the cache has 2
  EXPECT_FALSE(s.Add(Request(2, 0)).ok());    // max_tokens < 1
  GenerationRequest bad = Request(2, 1);
  bad.sampling.top_p = 0;
  EXPECT_FALSE(s.Add(bad).ok());
  EXPECT_FALSE(s.HasWork());
}

TEST(SchedulerTest, AbortFreesTheBlocksOfARunningOrWaitingSequenceAtOnce) {
  Scheduler s(Limits(1, 64), 100, 16, 4, {});
  const int64_t running = *s.Add(Request(9, 50));
  const int64_t waiting = *s.Add(Request(5, 50));
  StepInput step = s.Schedule();  // admits only `running` (max_num_seqs 1)
  ASSERT_EQ(step.sequences.size(), 1u);
  s.Update(step, Sampled(step, 7));
  EXPECT_LT(s.block_manager().num_free_blocks(), 16);

  absl::StatusOr<GenerationResult> r = s.Abort(running);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->finish_reason, FinishReason::kAbort);
  EXPECT_EQ(r->output_ids, std::vector<int32_t>{7});
  EXPECT_EQ(s.block_manager().num_free_blocks(), 16);
  ASSERT_TRUE(s.Abort(waiting).ok());
  EXPECT_FALSE(s.HasWork());
  EXPECT_EQ(s.Abort(running).status().code(), absl::StatusCode::kNotFound);
}

TEST(SchedulerTest, NewModelLimitsEndSequencesThatNoLongerFitAndChangeTheEosIds) {
  Scheduler s(Limits(4, 64), 100, 64, 4, {});
  const int64_t long_one = *s.Add(Request(20, 50));
  const int64_t short_one = *s.Add(Request(3, 50));
  StepInput step = s.Schedule();
  s.Update(step, Sampled(step, 7));
  std::vector<GenerationResult> ended = s.SetModelLimits(10, {9});
  ASSERT_EQ(ended.size(), 1u);
  EXPECT_EQ(ended[0].request_id, long_one);
  EXPECT_EQ(ended[0].finish_reason, FinishReason::kLength);
  EXPECT_FALSE(s.Add(Request(12, 1)).ok());  // checked against the new max_model_len
  step = s.Schedule();
  std::vector<GenerationResult> done = s.Update(step, Sampled(step, 9));  // the new eos id
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].request_id, short_one);
  EXPECT_EQ(done[0].finish_reason, FinishReason::kStop);
  EXPECT_EQ(s.block_manager().num_free_blocks(), 64);
}

TEST(BlockManagerTest, GrowIsAllOrNothingAndFreeReturnsEveryBlock) {
  BlockManager m(3, 4);
  ASSERT_TRUE(m.Grow(1, 8).ok());
  EXPECT_EQ(m.BlockTable(1).size(), 2u);
  EXPECT_FALSE(m.Grow(2, 8).ok());
  EXPECT_TRUE(m.BlockTable(2).empty());
  EXPECT_EQ(m.num_free_blocks(), 1);
  m.Free(1);
  EXPECT_EQ(m.num_free_blocks(), 3);
}

// Prefix caching: a second request with the same leading blocks computes only the rest, and
// the shared blocks are counted once.
TEST(SchedulerTest, ARepeatedPrefixIsReusedAndOnlyTheRestIsComputed) {
  Scheduler s(Limits(4, 64, /*prefix_caching=*/true), 100, 16, 4, {});
  ASSERT_TRUE(s.Add(Request(10, 1)).ok());
  StepInput first = s.Schedule();
  ASSERT_EQ(first.sequences.size(), 1u);
  EXPECT_EQ(first.sequences[0].start_position, 0);
  EXPECT_EQ(first.sequences[0].token_ids.size(), 10u);
  const std::vector<int32_t> first_table = first.sequences[0].block_table;
  ASSERT_EQ(s.Update(first, Sampled(first, 7)).size(), 1u);  // finished: blocks kept cached
  EXPECT_EQ(s.block_manager().num_free_blocks(), 16);        // cached but free to evict

  GenerationRequest longer = Request(10, 2);
  longer.prompt_ids.push_back(99);  // 11 tokens: the same first 8 (two full blocks)
  ASSERT_TRUE(s.Add(longer).ok());
  StepInput second = s.Schedule();
  ASSERT_EQ(second.sequences.size(), 1u);
  EXPECT_EQ(second.sequences[0].start_position, 8);
  EXPECT_EQ(second.sequences[0].token_ids, (std::vector<int32_t>{18, 19, 99}));
  EXPECT_EQ(second.sequences[0].block_table[0], first_table[0]);
  EXPECT_EQ(second.sequences[0].block_table[1], first_table[1]);
  EXPECT_EQ(s.block_manager().prefix_hits(), 8);

  // A prompt that is exactly its cached blocks still computes its last token.
  ASSERT_TRUE(s.Add(Request(8, 1)).ok());
  StepInput third = s.Schedule();
  bool found = false;
  for (const SequenceStep& q : third.sequences) {
    if (q.start_position == 4 && q.token_ids == std::vector<int32_t>{14, 15, 16, 17}) found = true;
  }
  EXPECT_TRUE(found);
}

TEST(SchedulerTest, ANewWeightVersionNeverFindsTheOldWeightsBlocks) {
  Scheduler s(Limits(4, 64, true), 100, 16, 4, {});
  ASSERT_TRUE(s.Add(Request(9, 1)).ok());
  StepInput first = s.Schedule();
  s.Update(first, Sampled(first, 7));
  s.SetWeightVersion(2);
  ASSERT_TRUE(s.Add(Request(9, 1)).ok());
  StepInput second = s.Schedule();
  ASSERT_EQ(second.sequences.size(), 1u);
  EXPECT_EQ(second.sequences[0].start_position, 0);  // recomputed in full
  EXPECT_EQ(s.block_manager().prefix_hits(), 0);
  s.Update(second, Sampled(second, 7));
  // The new version's blocks are found again.
  ASSERT_TRUE(s.Add(Request(9, 1)).ok());
  EXPECT_EQ(s.Schedule().sequences[0].start_position, 8);
}

TEST(SchedulerTest, CachedBlocksAreEvictedOnlyWhenNeededAndCountsStayRight) {
  // 6 blocks of 2: two 4-token prompts growing to 8 tokens need 8 blocks, so sequences are
  // preempted; a preempted one finds its own blocks again if they were not evicted.
  Scheduler s(Limits(4, 64, true), 100, 6, 2, {});
  GenerationRequest a = Request(4, 4), b = Request(4, 4);
  b.prompt_ids[0] = 77;  // different prompts
  ASSERT_TRUE(s.Add(a).ok());
  ASSERT_TRUE(s.Add(b).ok());
  std::vector<GenerationResult> done;
  for (int steps = 0; s.HasWork() && steps < 100; ++steps) {
    StepInput step = s.Schedule();
    ASSERT_FALSE(step.sequences.empty());
    EXPECT_LE(s.block_manager().num_free_blocks(), 6);
    for (auto& r : s.Update(step, Sampled(step, 9))) done.push_back(r);
  }
  ASSERT_EQ(done.size(), 2u);
  for (const auto& r : done) EXPECT_EQ(r.output_ids.size(), 4u);
  EXPECT_EQ(s.block_manager().num_free_blocks(), 6);
  // An abort of a sequence holding shared blocks gives back only its own references.
  ASSERT_TRUE(s.Add(a).ok());
  ASSERT_TRUE(s.Add(a).ok());
  StepInput both = s.Schedule();
  ASSERT_EQ(both.sequences.size(), 2u);
  ASSERT_TRUE(s.Abort(both.sequences[0].seq_id).ok());
  EXPECT_LT(s.block_manager().num_free_blocks(), 6);  // the other still holds the prefix
  ASSERT_TRUE(s.Abort(both.sequences[1].seq_id).ok());
  EXPECT_EQ(s.block_manager().num_free_blocks(), 6);
}

}  // namespace
}  // namespace loom
