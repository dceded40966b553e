// StagePacer: a stage's share of the machine while the rank serves steps.
//
// A stage (a shadow weight set loaded beside generation) and the step loop share the same cores.
// Priority alone (the stage thread's nice value) does not protect a step: a step's kernel threads
// meet at barriers, so one of them losing its core for a scheduler slice stalls the whole step.
// So the stage also paces itself: its reads go in chunks, and after each chunk, if the rank ran a
// step within the last kBusyWindow, it sleeps so that its working time is at most `share` of the
// wall time (share 0.5: as long asleep as it worked). A step running counts, whatever its length
// (a 150 ms step must not look idle). While the rank is idle it reads flat out.
//
// The pacer of the thread running a stage is found by the reads themselves (ActivePacer), so the
// readers of every weight source pace without being told; a thread with none never waits.
#ifndef LOOM_WORKER_LOADER_STAGE_PACER_H_
#define LOOM_WORKER_LOADER_STAGE_PACER_H_

#include <chrono>
#include <cstdint>
#include <functional>

namespace loom {

// The step loop marks each step while it runs (ScopedStep); stages read the marks. One rank per
// process.
class ScopedStep {
 public:
  ScopedStep();
  ~ScopedStep();  // the step's end
  ScopedStep(const ScopedStep&) = delete;
  ScopedStep& operator=(const ScopedStep&) = delete;
};
// A step runs now, or one ended within `window`.
bool StepsRanWithin(std::chrono::nanoseconds window);

class StagePacer {
 public:
  // How recent a step's end must be for the rank to count as serving between two steps.
  static constexpr std::chrono::milliseconds kBusyWindow{50};
  // Bytes a reader moves between two calls of Pace.
  static constexpr int64_t kChunkBytes = int64_t{4} << 20;
  // Work shorter than this is added to the next chunk's before any sleep (a sleep of a few
  // microseconds costs more than it asks for).
  static constexpr double kMinWorkSeconds = 0.002;

  // What the pacer reads and does, in seconds; tests give their own.
  struct Clock {
    std::function<double()> now;
    std::function<void(double)> sleep;
    std::function<bool()> steps_running;
  };
  static Clock RealClock();

  // share in (0, 1]; 1 never waits.
  explicit StagePacer(double share, Clock clock = RealClock());
  // Called after each chunk of work: sleeps as the share asks when steps are running.
  void Pace();
  double slept_seconds() const { return slept_; }  // as slept, not as asked
  int64_t pauses() const { return pauses_; }

 private:
  const double share_;
  const Clock clock_;
  double since_;  // end of the last pause: the work being paced started here
  double slept_ = 0;
  int64_t pauses_ = 0;
};

// The pacer of this thread, or null.
StagePacer* ActivePacer();

// Makes `pacer` this thread's for the scope.
class ScopedStagePacer {
 public:
  explicit ScopedStagePacer(StagePacer* pacer);
  ~ScopedStagePacer();
  ScopedStagePacer(const ScopedStagePacer&) = delete;
  ScopedStagePacer& operator=(const ScopedStagePacer&) = delete;

 private:
  StagePacer* const before_;
};

}  // namespace loom

#endif  // LOOM_WORKER_LOADER_STAGE_PACER_H_
