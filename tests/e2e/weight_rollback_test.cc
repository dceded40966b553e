// Commit as a switch and instant rollback, on a real `loom serve` at TP=2: with
// commit_weights {"keep_previous": true} the replaced set stays, rollback_weights makes it serve
// again as a new version — outputs before, after the commit and after each rollback equal the
// respective models' — versions only increase, a kept set blocks a stage until released, and a
// request in flight across a rollback follows the policy exactly.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <nlohmann/json.hpp>
#include <thread>

#include "absl/strings/match.h"
#include "tests/e2e/weight_test_util.h"

namespace loom {
namespace {

using nlohmann::json;
using testing::Call;
using testing::CallResult;
using testing::ErrorSays;
using testing::GreedyAll;
using testing::HfReference;
using testing::Server;
using testing::Streamed;

TEST(WeightRollbackTest, CommitKeepsThePreviousSetAndRollbacksSwitchBackAndForth) {
  const HfReference ref = testing::WeightTestReference();
  Server server(testing::WeightTestServe("--tp 2 --load-format dummy"));
  ASSERT_SERVING(server);
  const auto dummy = GreedyAll(server, ref);
  ASSERT_NE(dummy, ref.greedy);
  // Nothing kept yet: a rollback is a clear error that changes nothing.
  CallResult nothing = Call(server, "rollback_weights");
  EXPECT_EQ(nothing.status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_TRUE(ErrorSays(nothing, "no previous weights are kept")) << nothing.status.error_message();

  CallResult first = Call(server, "stage_weights", {{"source", {{"load_format", "auto"}}}});
  ASSERT_CALL_OK(first);
  for (const json& r : first.ranks) EXPECT_EQ(r.value("reused_buffers", true), false) << r.dump();
  CallResult committed = Call(server, "commit_weights", {{"keep_previous", true}});
  ASSERT_CALL_OK(committed);
  EXPECT_EQ(GreedyAll(server, ref), ref.greedy);
  auto status = server.Status();
  EXPECT_EQ(status.serving_weight_version(), 2u);
  EXPECT_EQ(status.previous_weight_version(), 1u);
  for (const auto& r : status.ranks()) {
    EXPECT_EQ(r.previous_version(), 1u);
    EXPECT_GT(r.previous_bytes(), 0);
    EXPECT_FALSE(r.dummy());
  }
  // Back to the dummy set as version 3, then forward to the real one as version 4.
  ASSERT_CALL_OK(Call(server, "rollback_weights"));
  EXPECT_EQ(GreedyAll(server, ref), dummy);
  status = server.Status();
  EXPECT_EQ(status.serving_weight_version(), 3u);
  EXPECT_EQ(status.previous_weight_version(), 2u);
  for (const auto& r : status.ranks()) EXPECT_TRUE(r.dummy());
  ASSERT_CALL_OK(Call(server, "rollback_weights"));
  EXPECT_EQ(GreedyAll(server, ref), ref.greedy);
  EXPECT_EQ(server.Status().serving_weight_version(), 4u);

  // A kept set holds a staged set's memory: a stage is refused until it goes.
  CallResult refused = Call(server, "stage_weights");
  EXPECT_EQ(refused.status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_TRUE(ErrorSays(refused, "release_previous_weights")) << refused.status.error_message();
  EXPECT_EQ(server.Status().staged_weight_version(), 0u);
  CallResult bad = Call(server, "commit_weights", {{"keep_previous", "yes"}});
  EXPECT_FALSE(bad.status.ok());
  // Releasing the kept set (the dummy one, version 3), the stage loads into its buffers: the
  // outputs below show every byte of it was written again.
  CallResult restaged = Call(server, "stage_weights", {{"release_previous", true}});
  ASSERT_CALL_OK(restaged);
  ASSERT_EQ(restaged.ranks.size(), 2u);
  for (const json& r : restaged.ranks) {
    EXPECT_EQ(r.value("reused_buffers", false), true) << r.dump();
    EXPECT_EQ(r.value("released_previous", 0), 3) << r.dump();
  }
  status = server.Status();
  EXPECT_EQ(status.previous_weight_version(), 0u);
  const uint64_t staged = status.staged_weight_version();
  EXPECT_GT(staged, 4u);  // versions only increase (a refused stage used one up)
  ASSERT_CALL_OK(Call(server, "commit_weights"));
  EXPECT_EQ(server.Status().serving_weight_version(), staged);
  EXPECT_EQ(server.Status().previous_weight_version(), 0u);
  EXPECT_TRUE(ErrorSays(Call(server, "rollback_weights"), "no previous weights are kept"));
  EXPECT_TRUE(ErrorSays(Call(server, "release_previous_weights"), "no previous weights are kept"));
  EXPECT_EQ(GreedyAll(server, ref), ref.greedy);
}

// A long request streaming when `policy`'s rollback lands, and the server's state after it.
struct AcrossRollback {
  Streamed request;
  std::vector<int32_t> prompt;
};

AcrossRollback RollBackDuringARequest(Server& server, const std::string& policy) {
  const HfReference ref = testing::WeightTestReference();
  AcrossRollback out;
  out.prompt = ref.prompts[0];
  std::atomic<int> messages{0};
  std::thread client([&] {
    out.request = testing::GenerateIds(server.stub(), out.prompt, 200, [&] { ++messages; });
  });
  while (messages.load() < 3) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  CallResult rolled = Call(server, "rollback_weights", {{"policy", policy}});
  EXPECT_TRUE(rolled.status.ok()) << rolled.status.error_message();
  client.join();
  return out;
}

TEST(WeightRollbackTest, ARequestInFlightAcrossARollbackFollowsThePolicy) {
  Server server(testing::WeightTestServe("--tp 2 --load-format dummy"));
  ASSERT_SERVING(server);
  ASSERT_CALL_OK(Call(server, "stage_weights", {{"source", {{"load_format", "auto"}}}}));
  ASSERT_CALL_OK(Call(server, "commit_weights", {{"keep_previous", true}}));
  // recompute: the tokens after the switch are the dummy model's greedy continuation of the
  // prompt and the tokens the real weights gave (their KV recomputed, never reused).
  AcrossRollback r = RollBackDuringARequest(server, "recompute");
  ASSERT_TRUE(r.request.status.ok()) << r.request.status.error_message();
  ASSERT_EQ(r.request.ids.size(), 200u);
  size_t old_tokens = 0, m = 0;
  for (; m < r.request.versions.size() && r.request.versions[m] == 2; ++m) {
    old_tokens += r.request.sizes[m];
  }
  ASSERT_GT(old_tokens, 0u);
  ASSERT_LT(old_tokens, 200u) << "the rollback came after the request ended";
  for (size_t i = m; i < r.request.versions.size(); ++i) EXPECT_EQ(r.request.versions[i], 3u);
  std::vector<int32_t> context = r.prompt;
  context.insert(context.end(), r.request.ids.begin(), r.request.ids.begin() + old_tokens);
  Streamed fresh = testing::GenerateIds(server.stub(), context,
                                        static_cast<int>(200 - old_tokens));
  ASSERT_TRUE(fresh.status.ok());
  EXPECT_EQ(fresh.ids, std::vector<int32_t>(r.request.ids.begin() + old_tokens,
                                            r.request.ids.end()));
  // abort: the request ends with "abort" at the switch.
  AcrossRollback aborted = RollBackDuringARequest(server, "abort");
  ASSERT_TRUE(aborted.request.status.ok()) << aborted.request.status.error_message();
  EXPECT_EQ(aborted.request.finish_reason, "abort");
  EXPECT_LT(aborted.request.ids.size(), 200u);
  EXPECT_EQ(server.Status().serving_weight_version(), 4u);
}

TEST(WeightRollbackTest, AStagePeaksAtOneMoreSetAndFiftyRollbacksKeepMemoryFlat) {
  // About 60 MB of weights per rank, so a leaked or extra set would show against the baseline.
  const std::string model = testing::MakeModel(
      "--layers 4 --hidden 1024 --heads 16 --kv-heads 4 --intermediate 4096 --vocab 8192");
  Server server(absl::StrCat("--model ", model, " --tp 2 --kv-cache-memory 4M"));
  ASSERT_SERVING(server);
  CallResult staged = Call(server, "stage_weights");
  ASSERT_CALL_OK(staged);
  for (const json& r : staged.ranks) {
    const int64_t weights = r["weight_bytes"].get<int64_t>();
    const int64_t peak = r["peak_rss_bytes"].get<int64_t>();
    EXPECT_GT(weights, 50'000'000);
    ASSERT_GT(peak, 0) << "the peak was not measured";
    // Serving set + KV + the process, then one staged set on top: 10 % more at most.
    EXPECT_LE(peak, r["rss_bytes_before"].get<int64_t>() + weights + weights / 10)
        << "peak " << peak << " for " << weights << " weight bytes";
  }
  ASSERT_CALL_OK(Call(server, "commit_weights", {{"keep_previous", true}}));
  auto rss = [&] {
    std::vector<int64_t> out;
    for (const json& r : Call(server, "describe").ranks) out.push_back(r["rss_bytes"]);
    return out;
  };
  std::vector<std::vector<int64_t>> samples;
  for (int i = 0; i < 50; ++i) {
    ASSERT_CALL_OK(Call(server, "rollback_weights"));
    samples.push_back(rss());
  }
  for (size_t rank = 0; rank < 2; ++rank) {
    std::vector<int64_t> first, last;
    for (int i = 0; i < 10; ++i) first.push_back(samples[i][rank]);
    for (int i = 40; i < 50; ++i) last.push_back(samples[i][rank]);
    std::sort(first.begin(), first.end());
    std::sort(last.begin(), last.end());
    EXPECT_LE(last[5], first[5] + (1 << 20)) << "rank " << rank << " grew over 50 rollbacks";
  }
}

}  // namespace
}  // namespace loom
