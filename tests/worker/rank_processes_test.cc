// RunRanks, the harness of the multi-process tests: a failing or hung rank ends the whole group
// promptly with an error that names it, instead of a test that hangs.
#include "tests/worker/rank_processes.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "absl/strings/match.h"

namespace loom::testing {
namespace {

const bool kSleepy = RegisterRankRole("sleepy", [](const RankContext& c) {
  if (c.rank == 1) std::this_thread::sleep_for(std::chrono::minutes(5));
  return absl::OkStatus();
});

const bool kFailing = RegisterRankRole("failing", [](const RankContext& c) {
  if (c.rank == 2) return absl::InternalError("rank two gives up");
  std::this_thread::sleep_for(std::chrono::minutes(5));  // as if waiting for rank 2
  return absl::OkStatus();
});

const bool kArgs = RegisterRankRole("args", [](const RankContext& c) {
  return c.args.at("a") == "x=1" && c.args.at("b").empty() && c.world_size == 2
             ? absl::OkStatus()
             : absl::InternalError("arguments did not arrive");
});

TEST(RankProcessesTest, AHungRankIsKilledAtTheDeadline) {
  const auto start = std::chrono::steady_clock::now();
  absl::Status s = RunRanks("sleepy", 2, {}, std::chrono::milliseconds(1500));
  EXPECT_TRUE(absl::IsDeadlineExceeded(s)) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "rank 1 still running")) << s;
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
}

TEST(RankProcessesTest, AFailingRankEndsTheGroupAndIsNamed) {
  const auto start = std::chrono::steady_clock::now();
  absl::Status s = RunRanks("failing", 3, {}, std::chrono::seconds(60));
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(absl::StrContains(s.message(), "rank 2 of 3 exited with code 1")) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "rank two gives up")) << s;
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
}

TEST(RankProcessesTest, ArgumentsReachEveryRank) {
  absl::Status s = RunRanks("args", 2, {{"a", "x=1"}, {"b", ""}}, std::chrono::seconds(30));
  EXPECT_TRUE(s.ok()) << s;
}

}  // namespace
}  // namespace loom::testing
