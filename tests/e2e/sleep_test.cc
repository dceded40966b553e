// Sleep and wake on a real `loom serve` at TP=2: requests while asleep are refused (gRPC
// UNAVAILABLE, HTTP 503, /health "asleep"), a request in flight at the sleep is recomputed after
// the wake (or aborted), the outputs after a wake equal HF's, a level-2 sleep gives back at least
// the weights' bytes of every rank's RSS, and a wake from it reloads them as a new version.
#include <httplib.h>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <atomic>
#include <nlohmann/json.hpp>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "tests/e2e/http_client.h"
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

int HealthStatus(Server& server, std::string* state) {
  httplib::Client c = testing::HttpClient(server.http_address());
  auto r = c.Get("/health");
  if (!r) return -1;
  *state = json::parse(r->body, nullptr, false).value("status", "");
  return r->status;
}

TEST(SleepTest, RequestsAreRefusedAsleepAndEachLevelWakesToTheSameOutputs) {
  const HfReference ref = testing::WeightTestReference();
  Server server(testing::WeightTestServe("--tp 2"));
  ASSERT_SERVING(server);
  ASSERT_EQ(GreedyAll(server, ref), ref.greedy);
  EXPECT_TRUE(ErrorSays(Call(server, "wake_up"), "not asleep"));
  EXPECT_EQ(Call(server, "sleep", {{"level", 3}}).status.error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  for (int level : {1, 2}) {
    CallResult slept = Call(server, "sleep", {{"level", level}});
    ASSERT_CALL_OK(slept);
    for (const json& r : slept.ranks) EXPECT_GT(r["kv_cache_bytes_freed"].get<int64_t>(), 0);
    EXPECT_EQ(server.Status().sleep_level(), level);
    Streamed refused = testing::GenerateIds(server.stub(), ref.prompts[0], 4);
    EXPECT_EQ(refused.status.error_code(), grpc::StatusCode::UNAVAILABLE);
    EXPECT_TRUE(absl::StrContains(refused.status.error_message(), "asleep"));
    std::string state;
    EXPECT_EQ(HealthStatus(server, &state), 503);
    EXPECT_EQ(state, "asleep");
    EXPECT_TRUE(ErrorSays(Call(server, "sleep", {{"level", 1}}), "already asleep"));
    if (level == 2) {
      EXPECT_TRUE(ErrorSays(Call(server, "wake_up"), "reload"));  // the weights are gone
      ASSERT_CALL_OK(Call(server, "wake_up", {{"reload", true}}));
      EXPECT_EQ(server.Status().serving_weight_version(), 2u);  // reloaded: a new version
    } else {
      ASSERT_CALL_OK(Call(server, "wake_up"));
      EXPECT_EQ(server.Status().serving_weight_version(), 1u);
    }
    EXPECT_EQ(server.Status().sleep_level(), 0);
    EXPECT_EQ(HealthStatus(server, &state), 200);
    EXPECT_EQ(GreedyAll(server, ref), ref.greedy) << "after waking from level " << level;
  }
}

TEST(SleepTest, ARequestInFlightAtASleepIsRecomputedAfterTheWakeOrAborted) {
  const HfReference ref = testing::WeightTestReference();
  Server server(testing::WeightTestServe("--tp 2"));
  ASSERT_SERVING(server);
  const Streamed alone = testing::GenerateIds(server.stub(), ref.prompts[0], 200);
  ASSERT_TRUE(alone.status.ok());
  for (const char* policy : {"recompute", "abort"}) {
    std::atomic<int> messages{0};
    Streamed across;
    std::thread client([&] {
      across = testing::GenerateIds(server.stub(), ref.prompts[0], 200, [&] { ++messages; });
    });
    while (messages.load() < 3) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    ASSERT_CALL_OK(Call(server, "sleep", {{"level", 2}, {"policy", policy}}));
    // Asleep for a while: the request waits (recompute) with no step run.
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    ASSERT_CALL_OK(Call(server, "reload_weights"));  // a reload is a level-2 wake
    client.join();
    ASSERT_TRUE(across.status.ok()) << across.status.error_message();
    if (std::string(policy) == "recompute") {
      EXPECT_EQ(across.ids, alone.ids) << "recomputed with the reloaded weights";
    } else {
      EXPECT_EQ(across.finish_reason, "abort");
      EXPECT_LT(across.ids.size(), 200u);
    }
  }
  EXPECT_EQ(server.Status().sleep_level(), 0);
}

TEST(SleepTest, ALevelTwoSleepGivesBackTheWeightsMemory) {
  // About 60 MB of weights per rank, so the drop stands clear of the allocator's noise.
  const std::string model = testing::MakeModel(
      "--layers 4 --hidden 1024 --heads 16 --kv-heads 4 --intermediate 4096 --vocab 8192");
  Server server(absl::StrCat("--model ", model, " --tp 2 --kv-cache-memory 4M"));
  ASSERT_SERVING(server);
  const std::vector<int32_t> prompt = {1, 2, 3, 4};
  const Streamed before = testing::GenerateIds(server.stub(), prompt, 8);
  ASSERT_TRUE(before.status.ok());
  CallResult described = Call(server, "describe");
  ASSERT_CALL_OK(described);
  CallResult slept = Call(server, "sleep", {{"level", 2}});
  ASSERT_CALL_OK(slept);
  for (size_t r = 0; r < slept.ranks.size(); ++r) {
    const int64_t weights = described.ranks[r]["weight_bytes"].get<int64_t>();
    const int64_t drop = slept.ranks[r]["rss_bytes_before"].get<int64_t>() -
                         slept.ranks[r]["rss_bytes"].get<int64_t>();
    EXPECT_GT(weights, 50'000'000);
    EXPECT_EQ(slept.ranks[r]["weight_bytes_freed"].get<int64_t>(), weights);
    EXPECT_GE(drop, weights) << "rank " << r << " gave back " << drop << " of " << weights
                             << " weight bytes";
  }
  ASSERT_CALL_OK(Call(server, "wake_up", {{"reload", true}}));
  const Streamed after = testing::GenerateIds(server.stub(), prompt, 8);
  ASSERT_TRUE(after.status.ok());
  EXPECT_EQ(after.ids, before.ids);
}

}  // namespace
}  // namespace loom
