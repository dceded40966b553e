// A step from the wire: StepFromProto's field mapping, and CheckStep refusing every value the
// runner would index out of bounds with (tests/fuzz/step_request_fuzz.cc fuzzes both).
#include "worker/step_proto.h"

#include <climits>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace loom {
namespace {

using ::testing::HasSubstr;

constexpr StepLimits kLimits{.vocab_size = 64, .max_positions = 256, .block_size = 4,
                             .num_blocks = 32};

loom::v1::StepRequest OneSequence() {
  loom::v1::StepRequest request;
  loom::v1::SequenceStep* s = request.add_sequences();
  s->set_seq_id(7);
  s->add_token_ids(1);
  s->add_token_ids(5);
  s->set_start_position(3);
  s->add_block_table(2);
  s->add_block_table(9);
  s->set_sample(true);
  return request;
}

std::string Refusal(const loom::v1::StepRequest& request) {
  absl::Status status = CheckStep(StepFromProto(request), kLimits);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  return std::string(status.message());
}

TEST(StepProtoTest, ConvertsEveryFieldAndReadsProtoZerosAsUnset) {
  loom::v1::StepRequest request = OneSequence();
  request.set_weight_version(3);
  request.set_return_logits(true);
  loom::v1::SequenceStep* s = request.mutable_sequences(0);
  s->set_sample_index(4);
  s->mutable_sampling()->set_temperature(0.5f);
  s->mutable_sampling()->set_top_k(10);
  s->mutable_sampling()->set_seed(99);
  s->mutable_sampling()->set_logprobs(3);
  s->add_penalty_ids(5);
  s->add_penalty_output_counts(2);
  const StepInput step = StepFromProto(request);
  EXPECT_EQ(step.weight_version, 3u);
  EXPECT_TRUE(step.return_logits);
  ASSERT_EQ(step.sequences.size(), 1u);
  const SequenceStep& out = step.sequences[0];
  EXPECT_EQ(out.seq_id, 7);
  EXPECT_EQ(out.token_ids, (std::vector<int32_t>{1, 5}));
  EXPECT_EQ(out.start_position, 3);
  EXPECT_EQ(out.block_table, (std::vector<int32_t>{2, 9}));
  EXPECT_TRUE(out.sample);
  EXPECT_EQ(out.sample_index, 4u);
  EXPECT_EQ(out.sampling.temperature, 0.5f);
  EXPECT_EQ(out.sampling.top_k, 10);
  EXPECT_EQ(out.sampling.top_p, 1.0f);  // 0 on the wire
  EXPECT_EQ(out.sampling.repetition_penalty, 1.0f);
  EXPECT_EQ(out.sampling.seed, 99u);
  EXPECT_EQ(out.sampling.logprobs, 2);  // k + 1 on the wire
  EXPECT_EQ(out.penalty_ids, (std::vector<int32_t>{5}));
  EXPECT_EQ(out.penalty_output_counts, (std::vector<int32_t>{2}));
  EXPECT_TRUE(CheckStep(step, kLimits).ok()) << CheckStep(step, kLimits);
  // logprobs 0 on the wire is none.
  request.mutable_sequences(0)->mutable_sampling()->set_logprobs(0);
  EXPECT_EQ(StepFromProto(request).sequences[0].sampling.logprobs, -1);
}

// Found by the step fuzzer: logprobs INT32_MIN was decremented past int32 (undefined
// behaviour) before any check; now every negative count converts to one that is refused.
TEST(StepProtoTest, NegativeLogprobsAreRefusedWithoutOverflow) {
  for (int32_t wire : {-1, -2, INT32_MIN}) {
    loom::v1::StepRequest request = OneSequence();
    request.mutable_sequences(0)->mutable_sampling()->set_logprobs(wire);
    EXPECT_LT(StepFromProto(request).sequences[0].sampling.logprobs, -1) << wire;
    EXPECT_THAT(Refusal(request), HasSubstr("top logprobs must be in [0, 20]")) << wire;
  }
  loom::v1::StepRequest request = OneSequence();
  request.mutable_sequences(0)->mutable_sampling()->set_logprobs(INT32_MAX);
  EXPECT_THAT(Refusal(request), HasSubstr("top logprobs"));
}

TEST(StepProtoTest, RefusesWhatTheRunnerWouldIndexOutOfBounds) {
  EXPECT_THAT(Refusal(loom::v1::StepRequest()), HasSubstr("no sequences"));
  auto with = [](auto change) {
    loom::v1::StepRequest request = OneSequence();
    change(*request.mutable_sequences(0));
    return request;
  };
  using S = loom::v1::SequenceStep;
  EXPECT_THAT(Refusal(with([](S& s) { s.clear_token_ids(); })),
              HasSubstr("sequence 7: a step needs at least one token"));
  EXPECT_THAT(Refusal(with([](S& s) { s.set_token_ids(1, 64); })),
              HasSubstr("token id 64 outside [0, 64)"));
  EXPECT_THAT(Refusal(with([](S& s) { s.set_token_ids(0, -1); })), HasSubstr("token id -1"));
  EXPECT_THAT(Refusal(with([](S& s) { s.set_start_position(-1); })), HasSubstr("positions [-1"));
  EXPECT_THAT(Refusal(with([](S& s) { s.set_start_position(255); })),
              HasSubstr("positions [255, 257) outside the model's 256 positions"));
  EXPECT_THAT(Refusal(with([](S& s) { s.set_start_position(INT32_MAX); })),
              HasSubstr("outside the model's"));
  // Positions 3 and 4 need blocks 0 and 1 of the table.
  EXPECT_THAT(Refusal(with([](S& s) { s.mutable_block_table()->RemoveLast(); })),
              HasSubstr("block table of 1 blocks for 5 tokens"));
  EXPECT_THAT(Refusal(with([](S& s) { s.set_block_table(1, 32); })),
              HasSubstr("block id 32 outside [0, 32)"));
  // An id past the positions still names a block the attention kernels read.
  EXPECT_THAT(Refusal(with([](S& s) { s.add_block_table(-5); })), HasSubstr("block id -5"));
  EXPECT_THAT(Refusal(with([](S& s) { s.mutable_sampling()->set_top_p(1.5f); })),
              HasSubstr("sequence 7: sampling top_p"));
  EXPECT_THAT(Refusal(with([](S& s) {
                s.mutable_sampling()->set_presence_penalty(0.5f);
                s.add_penalty_ids(3);
              })),
              HasSubstr("1 penalty ids but 0 counts"));
  EXPECT_THAT(Refusal(with([](S& s) {
                s.add_penalty_ids(64);
                s.add_penalty_output_counts(1);
              })),
              HasSubstr("penalty token 64 (count 1) outside [0, 64)"));
  EXPECT_THAT(Refusal(with([](S& s) {
                s.add_penalty_ids(3);
                s.add_penalty_output_counts(-1);
              })),
              HasSubstr("penalty token 3 (count -1)"));
  // An unsampled prompt chunk's sampling fields are not read.
  loom::v1::StepRequest chunk = with([](S& s) {
    s.set_sample(false);
    s.mutable_sampling()->set_top_p(7.0f);
    s.add_penalty_ids(1000);
  });
  EXPECT_TRUE(CheckStep(StepFromProto(chunk), kLimits).ok());
}

TEST(StepProtoTest, RefusesLimitsWithoutBlocks) {
  StepLimits limits = kLimits;
  limits.block_size = 0;
  EXPECT_THAT(std::string(CheckStep(StepFromProto(OneSequence()), limits).message()),
              HasSubstr("block size 0"));
}

}  // namespace
}  // namespace loom
