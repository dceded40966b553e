#include "worker/loader/stage_pacer.h"

#include <atomic>
#include <thread>
#include <utility>

namespace loom {
namespace {

std::atomic<int64_t> last_step_end_ns{0};
std::atomic<int> steps_running{0};
thread_local StagePacer* active_pacer = nullptr;

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

ScopedStep::ScopedStep() { steps_running.fetch_add(1, std::memory_order_relaxed); }

ScopedStep::~ScopedStep() {
  last_step_end_ns.store(NowNs(), std::memory_order_relaxed);
  steps_running.fetch_sub(1, std::memory_order_relaxed);
}

bool StepsRanWithin(std::chrono::nanoseconds window) {
  if (steps_running.load(std::memory_order_relaxed) > 0) return true;
  const int64_t last = last_step_end_ns.load(std::memory_order_relaxed);
  return last != 0 && NowNs() - last <= window.count();
}

StagePacer::Clock StagePacer::RealClock() {
  return Clock{
      [] { return std::chrono::duration<double>(
               std::chrono::steady_clock::now().time_since_epoch()).count(); },
      [](double seconds) {
        std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
      },
      [] { return StepsRanWithin(kBusyWindow); }};
}

StagePacer::StagePacer(double share, Clock clock)
    : share_(share), clock_(std::move(clock)), since_(clock_.now()) {}

void StagePacer::Pace() {
  if (share_ >= 1) return;
  const double now = clock_.now();
  const double worked = now - since_;
  if (worked < kMinWorkSeconds) return;  // keep counting: a sleep this short would overshoot
  since_ = now;
  if (!clock_.steps_running()) return;
  clock_.sleep(worked * (1 - share_) / share_);
  since_ = clock_.now();
  slept_ += since_ - now;
  ++pauses_;
}

StagePacer* ActivePacer() { return active_pacer; }

ScopedStagePacer::ScopedStagePacer(StagePacer* pacer) : before_(active_pacer) {
  active_pacer = pacer;
}

ScopedStagePacer::~ScopedStagePacer() { active_pacer = before_; }

}  // namespace loom
