// WeightManager: the versions of one rank's weights — the serving set the model runs with, and
// at most one staged (shadow) set being loaded or waiting for commit (DESIGN.md §3.5–3.6).
//
// * InitialLoad, Stage and ReloadInPlace are collective over the weight communicator (a Gloo or
//   NCCL group kept apart from the one steps use, so staging runs beside generation). They check
//   the whole source on every rank before writing anything (see WeightLoad).
// * Stage loads into a shadow decoder with the serving one's layout; Commit switches the serving
//   decoder to its buffers in constant time and frees the replaced ones, or keeps them as the
//   previous set for Rollback (then a stage is refused unless it releases that set, whose
//   buffers it then reuses: the kept set holds the memory a staged one needs); Abort frees the
//   staged set.
// * ReloadInPlace writes straight into the serving buffers while holding the step lock (no step
//   runs with half-written weights; serving pauses for the write). A failure after the checks
//   passed (an I/O error mid-read) leaves this rank's weights mixed: the rank turns "failed" and
//   refuses steps. That is why a reload prefers staging when memory allows (see the controller).
// * Every set carries a version, its load format, its source and whether it is dummy; steps name
//   the version they must run with and a rank serving another refuses them.
//
// Thread-safe. Weight operations are serialised among themselves; steps hold `step_mu` (owned by
// the caller) and only Commit and ReloadInPlace take it.
#ifndef LOOM_WORKER_WEIGHT_MANAGER_H_
#define LOOM_WORKER_WEIGHT_MANAGER_H_

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <atomic>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/engine_config.h"
#include "worker/comm/communicator.h"
#include "worker/loader/weight_load.h"
#include "worker/model/decoder.h"

namespace loom {

// What one set of weights is.
struct WeightSetInfo {
  uint64_t version = 0;
  std::string load_format;  // auto, dummy, sharded_state, distributed (a trainer's push)
  std::string source;       // model dir, "dummy(seed=S)", or the update group
  std::string strategy;
  bool dummy = false;
};

class WeightManager {
 public:
  // `serving` is the model steps run; `shadow_options` builds shadow sets with the same layout.
  WeightManager(Decoder* serving, DecoderOptions shadow_options, Communicator* weight_comm,
                absl::Mutex* step_mu);
  ~WeightManager();  // waits for a committed shadow set to be freed

  // The first load, into the serving set, as `version`.
  absl::StatusOr<nlohmann::json> InitialLoad(const LoadConfig& load, uint64_t version = 1);
  // Loads `load` into a shadow set tagged `version`. The buffers of a set this replaces are
  // written again rather than freed and mapped afresh: an earlier staged set's, or with
  // `release_previous` the kept previous set's (refused while one is kept without it). Memory
  // that has been written before loads several times faster than fresh pages, which fault in
  // one at a time — so a commit that keeps the previous set, then a stage that releases it,
  // double-buffers: no stage after the first maps new memory, and each set's buffers keep their
  // addresses (their device graphs stay valid).
  absl::StatusOr<nlohmann::json> Stage(const LoadConfig& load, uint64_t version,
                                       bool release_previous = false);
  // Makes the staged set `version` the serving one: a constant-time switch of the buffers
  // between two steps (Decoder::SwapWeights), not a copy. The replaced set is freed (after the
  // call returns), or with `keep_previous` kept for Rollback. FailedPrecondition when `version`
  // is not staged.
  absl::StatusOr<nlohmann::json> Commit(uint64_t version, bool keep_previous = false);
  // Makes the kept previous set serve again, as `version` (above the serving one), between two
  // steps; the set it replaces is kept in its place (a second rollback rolls forward).
  // FailedPrecondition when none is kept.
  absl::StatusOr<nlohmann::json> Rollback(uint64_t version);
  // Frees the kept previous set. FailedPrecondition when none is kept.
  absl::StatusOr<nlohmann::json> ReleasePrevious();

  // Sleep (vLLM's sleep mode): steps are refused until Wake. Level 1 frees the device's weight
  // buffers after copying them to host memory (a host rank keeps its weights as they are: they
  // already live in host memory); level 2 frees them with no copy. Refused while a staged or
  // kept set exists, or when not ready. Run between steps (the caller holds no step running).
  absl::StatusOr<nlohmann::json> Sleep(int level);
  // Wakes: what level 1 kept comes back (the host copy uploaded into fresh buffers); after a
  // level-2 sleep, `version` != 0 loads `load` (collective over the weight group, like a
  // stage) as that version; 0 is refused there. A failure leaves the rank asleep.
  absl::StatusOr<nlohmann::json> Wake(const LoadConfig& load, uint64_t version);
  absl::StatusOr<nlohmann::json> AbortStaged();
  // Writes `load` into the serving set in place, as `version`.
  absl::StatusOr<nlohmann::json> ReloadInPlace(const LoadConfig& load, uint64_t version);
  // A shadow set that starts as a copy of the serving one (a trainer updates some tensors).
  absl::StatusOr<Decoder*> BeginPartialStage(uint64_t version, const std::string& source);
  // Marks the set BeginPartialStage made as complete and ready to commit.
  void FinishPartialStage(bool ok);
  // Writes this rank's parts of the serving set to `dir` (see SaveShardedState).
  absl::StatusOr<nlohmann::json> SaveShardedState(const std::string& dir, int64_t max_file_size,
                                                  bool copy_model_files,
                                                  const std::string& model_dir);

  // OK, or why this rank cannot run a step with `version`.
  absl::Status CheckServing(uint64_t version) const;
  uint64_t serving_version() const;
  // {"state", "serving": {...}, "staged": {...}|null, "previous": {..., "bytes"}|null,
  // "progress": {...}, "releasing": bool (a replaced set is still being freed)}
  nlohmann::json Describe() const;

 private:
  enum class State { kStarting, kLoading, kReady, kStaging, kFailed, kAsleep };
  static const char* StateName(State s);
  static WeightSetInfo InfoOf(const LoadConfig& load, uint64_t version);
  static nlohmann::json ReportOf(const LoadResult& r);

  Decoder* const serving_;
  const DecoderOptions shadow_options_;
  Communicator* const weight_comm_;
  absl::Mutex* const step_mu_;
  // Waits until the shadow set the last commit released is freed (op_mu_ held).
  void FinishRelease();
  // Frees `set` on a thread of its own (op_mu_ held; FinishRelease joins it).
  void Release(std::unique_ptr<Decoder> set);
  // FailedPrecondition naming `what` while asleep.
  absl::Status CheckAwake(const char* what) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // FailedPrecondition naming `what` while a previous set is kept.
  absl::Status CheckNoPrevious(const char* what) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Mutex op_mu_;  // one weight operation at a time, in the same order on every rank
  // Frees a committed shadow set after the commit has answered: unmapping a GB-sized set takes
  // ~0.1 s that the commit pause need not include. Joined by the next operation.
  std::thread releasing_;
  std::atomic<bool> release_pending_{false};  // describe's "releasing"
  LoadProgress progress_;

  mutable absl::Mutex mu_;
  State state_ ABSL_GUARDED_BY(mu_) = State::kStarting;
  std::string error_ ABSL_GUARDED_BY(mu_);
  WeightSetInfo serving_info_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<Decoder> shadow_ ABSL_GUARDED_BY(mu_);
  bool shadow_ready_ ABSL_GUARDED_BY(mu_) = false;
  WeightSetInfo shadow_info_ ABSL_GUARDED_BY(mu_);
  // The set a commit with keep_previous replaced (or a rollback did), for Rollback.
  std::unique_ptr<Decoder> previous_ ABSL_GUARDED_BY(mu_);
  int sleep_level_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<Tensor> host_copy_;  // a level-1 sleep's weights, by parameter (op_mu_ held)
  WeightSetInfo previous_info_ ABSL_GUARDED_BY(mu_);
};

}  // namespace loom

#endif  // LOOM_WORKER_WEIGHT_MANAGER_H_
