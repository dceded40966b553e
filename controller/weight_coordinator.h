// WeightCoordinator: the controller's side of the weight lifecycle (DESIGN.md §3.5–3.7). It owns
// the weight versions, orders every weight operation (one at a time, the same order on every
// rank), and decides where each switch happens relative to the steps:
//
// * update_config {merge patch}: validated here, then dry-run on every rank, then applied on
//   every rank — all or none.
// * stage_weights {"source"?, "release_previous"?}: loads the next version into every rank's
//   shadow set while steps keep running. commit_weights {"policy"?, "keep_previous"?}: between
//   two steps, every rank switches its serving decoder to the shadow's buffers (constant time,
//   no copy) and the next step carries the new version (a rank serving another refuses it), so
//   the switch is atomic across ranks by construction. abort_staged_weights.
// * Rollback: with keep_previous the replaced set stays on every rank; rollback_weights
//   {"policy"?} makes it serve again between two steps as a new version (with its model
//   directory's tokenizer and limits), keeping the set it replaces (a second rollback rolls
//   forward); release_previous_weights frees it. While one is kept a stage is refused (its
//   memory is the staged set's) unless it asks "release_previous": true, and reload_weights
//   "auto" goes in place.
// * sleep {"level": 1|2, "policy"?}: between two steps every rank frees its KV cache and, at
//   level 1, offloads its weights to host memory (a host rank keeps them: they are there
//   already), at level 2 drops them; the engine runs no step until wake_up and refuses new
//   requests (Unavailable: HTTP 503); in-flight sequences are recomputed after the wake
//   (recompute) or end now (abort); the prefix cache is emptied. wake_up {"reload"?} restores
//   level 1's weights, or loads level 2's again as a new version (reload: true, or a
//   reload_weights while asleep).
// * reload_weights {"mode"?, "policy"?}: from the current load config. "staged" is stage +
//   commit (serving continues during the load; needs memory for a second copy of the weights).
//   "in_place" writes into the serving buffers between steps (serving pauses for the load; the
//   source is checked on every rank first, but an I/O error after that leaves the ranks failed).
//   "auto" (default) stages when every rank has the memory, else goes in place; the result says
//   which mode ran.
// * update_weights_from_distributed: a trainer's push is staged under the next version; the
//   trainer commits it like any stage.
//
// Policies for sequences in flight at a switch (DESIGN.md §3.6): "recompute" (default) — their
// KV is dropped and rebuilt with the new weights, no request fails; "abort" — they end with
// finish reason "abort". Old KV never meets new weights.
//
// Every stage and reload also reads the source directory's ServedModel (config, tokenizer, eos
// ids, generation defaults) and checks it can replace the serving one before any rank loads:
// another architecture or shape is refused here, naming the field. The switch hands it to the
// engine together with the version, so what serves and what status says change at one step.
//
// Thread-safe.
#ifndef LOOM_CONTROLLER_WEIGHT_COORDINATOR_H_
#define LOOM_CONTROLLER_WEIGHT_COORDINATOR_H_

#include <chrono>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/engine_config.h"
#include "controller/served_model.h"
#include "controller/worker_group.h"

namespace loom {

enum class SwitchPolicy { kRecompute, kAbort };

struct WeightCoordinatorHooks {
  // A collective call on every rank.
  std::function<absl::StatusOr<std::vector<RankResult>>(
      const std::string& method, const std::string& args_json, std::chrono::milliseconds timeout)>
      call;
  // Runs `fn` on the engine thread between two steps and returns its status.
  std::function<absl::Status(std::function<absl::Status()> fn)> between_steps;
  // On the engine thread, after every rank switched: later steps carry `version` and are served
  // as `model` says (the same object when the directory's files did not change); sequences in
  // flight follow `policy`.
  std::function<void(uint64_t version, SwitchPolicy policy,
                     std::shared_ptr<const ServedModel> model)>
      switched;
  // Every rank's switch did not complete: the engine stops serving with `error`.
  std::function<void(const absl::Status& error)> broken;
  // On the engine thread, after every rank slept (`level` 1 or 2: no step runs until a wake,
  // the sequences in flight follow `policy`, the prefix cache is emptied) or woke (level 0).
  std::function<void(int level, SwitchPolicy policy)> slept;
};

class WeightCoordinator {
 public:
  // `model` serves now; its config is the shape the ranks were built with.
  WeightCoordinator(const EngineConfig& config, std::shared_ptr<const ServedModel> model,
                    WeightCoordinatorHooks hooks);

  // True for the methods above (and the other weight methods it orders: save_sharded_state,
  // init/destroy_weight_update_group).
  static bool Handles(const std::string& method);
  absl::StatusOr<std::vector<RankResult>> Call(const std::string& method,
                                               const std::string& args_json,
                                               std::chrono::milliseconds timeout);

  // The engine restarted every rank after a failure: they load the serving load config afresh,
  // as the version returned (above every earlier one), with nothing staged or kept, awake. A
  // stage still answering from the old ranks records nothing (see restarts_).
  uint64_t Restarted();

  uint64_t serving_version() const;
  uint64_t staged_version() const;
  // The version of the set kept for a rollback (0: none).
  uint64_t previous_version() const;
  // 0 awake, else the level of the sleep the ranks are in.
  int sleep_level() const;
  EngineConfig config() const;

 private:
  absl::StatusOr<std::vector<RankResult>> UpdateConfig(const nlohmann::json& patch,
                                                       std::chrono::milliseconds timeout);
  // `release_previous`: the ranks' kept previous sets are freed by the stage, which loads into
  // their buffers.
  absl::StatusOr<std::vector<RankResult>> Stage(const nlohmann::json& source,
                                                bool release_previous,
                                                std::chrono::milliseconds timeout);
  absl::StatusOr<std::vector<RankResult>> Commit(uint64_t version, SwitchPolicy policy,
                                                 bool keep_previous,
                                                 std::chrono::milliseconds timeout);
  absl::StatusOr<std::vector<RankResult>> Rollback(SwitchPolicy policy,
                                                   std::chrono::milliseconds timeout);
  absl::StatusOr<std::vector<RankResult>> ReleasePrevious(std::chrono::milliseconds timeout);
  absl::StatusOr<std::vector<RankResult>> Sleep(const nlohmann::json& args,
                                                std::chrono::milliseconds timeout);
  absl::StatusOr<std::vector<RankResult>> WakeUp(bool reload, std::chrono::milliseconds timeout);
  absl::StatusOr<std::vector<RankResult>> Reload(const nlohmann::json& args,
                                                 std::chrono::milliseconds timeout);

  uint64_t NextVersion();  // versions are never reused
  // The ServedModel of `next`'s model directory, checked to be able to replace the serving one.
  absl::StatusOr<std::shared_ptr<const ServedModel>> PrepareModel(const EngineConfig& next);

  WeightCoordinatorHooks hooks_;
  const ModelConfig ranks_model_;  // what the ranks' buffers were built for
  absl::Mutex op_mu_;  // one weight operation at a time
  mutable absl::Mutex mu_;
  EngineConfig config_ ABSL_GUARDED_BY(mu_);
  EngineConfig staged_config_ ABSL_GUARDED_BY(mu_);  // config_ with the staged set's source
  uint64_t serving_version_ ABSL_GUARDED_BY(mu_) = 1;
  uint64_t staged_version_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t last_version_ ABSL_GUARDED_BY(mu_) = 1;  // versions are never reused
  std::shared_ptr<const ServedModel> serving_model_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<const ServedModel> staged_model_ ABSL_GUARDED_BY(mu_);
  // The set kept by commit_weights {"keep_previous": true} (or replaced by a rollback).
  uint64_t previous_version_ ABSL_GUARDED_BY(mu_) = 0;
  int sleep_level_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t restarts_ ABSL_GUARDED_BY(mu_) = 0;  // Restarted calls
  std::shared_ptr<const ServedModel> previous_model_ ABSL_GUARDED_BY(mu_);
  LoadConfig previous_load_ ABSL_GUARDED_BY(mu_);
};

absl::StatusOr<SwitchPolicy> ParseSwitchPolicy(const nlohmann::json& args);

}  // namespace loom

#endif  // LOOM_CONTROLLER_WEIGHT_COORDINATOR_H_
