// StagePacer: a stage's chunks sleep to keep its share of wall time while steps run, and never
// while the rank is idle or the share is 1. On a fake clock, so the figures are exact.
#include "worker/loader/stage_pacer.h"

#include <gtest/gtest.h>

#include <thread>

namespace loom {
namespace {

// Time moves only when a chunk works (Work) or the pacer sleeps (by what it asks, plus
// `overrun`).
struct FakeTime {
  double now = 100;
  bool steps = true;
  double overrun = 0;
  StagePacer::Clock clock() {
    return {[this] { return now; }, [this](double s) { now += s + overrun; },
            [this] { return steps; }};
  }
};

void Work(FakeTime& time, StagePacer& pacer, int chunks, double seconds) {
  for (int i = 0; i < chunks; ++i) {
    time.now += seconds;
    pacer.Pace();
  }
}

TEST(StagePacerTest, WhileStepsRunTheShareSetsTheSleepPerWork) {
  FakeTime time;
  StagePacer half(0.5, time.clock());
  Work(time, half, 10, 0.01);
  EXPECT_NEAR(half.slept_seconds(), 0.1, 1e-9);  // as long asleep as at work
  EXPECT_EQ(half.pauses(), 10);
  StagePacer quarter(0.25, time.clock());
  Work(time, quarter, 5, 0.01);
  EXPECT_NEAR(quarter.slept_seconds(), 0.15, 1e-9);
}

TEST(StagePacerTest, AnIdleRankOrAFullShareNeverWaits) {
  FakeTime time;
  time.steps = false;
  StagePacer idle(0.5, time.clock());
  Work(time, idle, 10, 0.01);
  EXPECT_EQ(idle.pauses(), 0);
  // Work done while idle is not slept for once steps start: only what follows them is.
  time.steps = true;
  Work(time, idle, 1, 0.01);
  EXPECT_NEAR(idle.slept_seconds(), 0.01, 1e-9);
  StagePacer full(1, time.clock());
  Work(time, full, 10, 0.01);
  EXPECT_EQ(full.pauses(), 0);
}

TEST(StagePacerTest, ShortChunksAddUpBeforeASleep) {
  FakeTime time;
  StagePacer pacer(0.5, time.clock());
  Work(time, pacer, 1, 0.0005);  // below kMinWorkSeconds: no sleep yet
  EXPECT_EQ(pacer.pauses(), 0);
  Work(time, pacer, 3, 0.0005);  // 2 ms in all: one sleep for all of it
  EXPECT_EQ(pacer.pauses(), 1);
  EXPECT_NEAR(pacer.slept_seconds(), 0.002, 1e-9);
}

TEST(StagePacerTest, AnOverrunSleepCountsAsSlept) {
  FakeTime time;
  time.overrun = 0.003;
  StagePacer pacer(0.5, time.clock());
  Work(time, pacer, 2, 0.01);
  EXPECT_NEAR(pacer.slept_seconds(), 0.026, 1e-9);
}

TEST(StagePacerTest, ARunningStepAndARecentEndMarkTheRankBusy) {
  {
    ScopedStep step;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    EXPECT_TRUE(StepsRanWithin(std::chrono::milliseconds(1)));  // running, however long
  }
  EXPECT_TRUE(StepsRanWithin(std::chrono::seconds(10)));
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_FALSE(StepsRanWithin(std::chrono::milliseconds(1)));
}

TEST(StagePacerTest, TheThreadsPacerIsScoped) {
  EXPECT_EQ(ActivePacer(), nullptr);
  StagePacer pacer(0.5);
  {
    ScopedStagePacer scoped(&pacer);
    EXPECT_EQ(ActivePacer(), &pacer);
    StagePacer* other_thread = &pacer;
    std::thread([&] { other_thread = ActivePacer(); }).join();
    EXPECT_EQ(other_thread, nullptr);  // another thread's reads are not paced by this stage
  }
  EXPECT_EQ(ActivePacer(), nullptr);
}

}  // namespace
}  // namespace loom
