#include "worker/memory_plan.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace loom {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

constexpr int64_t kGiB = int64_t{1} << 30;

// An H200-like device: 140 GiB, the 0.6B model's weights and workspace loaded.
MemoryFigures H200() {
  MemoryFigures f;
  f.total_bytes = 140 * kGiB;
  f.weight_bytes = 1200'000'000;
  f.free_bytes = f.total_bytes - f.weight_bytes - 300'000'000;  // weights + workspace + context
  f.peak_step_bytes = 100'000'000;
  f.staging_bytes = f.weight_bytes;
  f.block_bytes = 16 * 28 * 2 * 8 * 128 * 2;  // 16 tokens, 28 layers, K+V, 8 heads × 128, bf16
  f.utilization = 0.9;
  return f;
}

TEST(MemoryPlanTest, TheKvCacheTakesWhatIsLeftOfTheUtilisationLessStagingRoom) {
  const MemoryFigures f = H200();
  absl::StatusOr<MemoryPlan> plan = PlanKvCache(f);
  ASSERT_TRUE(plan.ok()) << plan.status();
  const int64_t expected = static_cast<int64_t>(0.9 * f.total_bytes) -
                           (f.total_bytes - f.free_bytes) - f.peak_step_bytes - f.staging_bytes;
  EXPECT_EQ(plan->num_blocks, expected / f.block_bytes);
  EXPECT_EQ(plan->kv_bytes, plan->num_blocks * f.block_bytes);
  EXPECT_LE(plan->kv_bytes, expected);
  EXPECT_THAT(plan->summary, AllOf(HasSubstr("weights 1.20 GB"), HasSubstr("staging 1.20 GB"),
                                   HasSubstr("blocks")));
  // No staging room: exactly one weight set more for the cache.
  MemoryFigures none = f;
  none.staging_bytes = 0;
  EXPECT_EQ(PlanKvCache(none)->num_blocks, (expected + f.staging_bytes) / f.block_bytes);
}

TEST(MemoryPlanTest, OtherProcessesMemoryCountsAgainstTheShare) {
  MemoryFigures f = H200();
  const int64_t before = PlanKvCache(f)->kv_bytes;
  f.free_bytes -= 10 * kGiB;  // someone else took 10 GiB
  EXPECT_LE(PlanKvCache(f)->kv_bytes, before - 10 * kGiB);
}

TEST(MemoryPlanTest, TooLittleMemoryIsAnErrorWithEveryFigure) {
  MemoryFigures f = H200();
  f.utilization = 0.01;
  absl::StatusOr<MemoryPlan> plan = PlanKvCache(f);
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(plan.status().message(),
              AllOf(HasSubstr("weights 1.20 GB"), HasSubstr("step peak"), HasSubstr("staging"),
                    HasSubstr("0.01 ×"), HasSubstr("less than one block")));
}

TEST(MemoryPlanTest, FiguresThatCannotBeAreRejected) {
  for (auto broken : std::vector<void (*)(MemoryFigures&)>{
           [](MemoryFigures& f) { f.free_bytes = f.total_bytes + 1; },
           [](MemoryFigures& f) { f.block_bytes = 0; },
           [](MemoryFigures& f) { f.peak_step_bytes = -1; },
           [](MemoryFigures& f) { f.total_bytes = 0; },
           [](MemoryFigures& f) { f.utilization = 1.5; },
           [](MemoryFigures& f) { f.utilization = 0; }}) {
    MemoryFigures f = H200();
    broken(f);
    EXPECT_EQ(PlanKvCache(f).status().code(), absl::StatusCode::kInvalidArgument);
  }
}

}  // namespace
}  // namespace loom
