// The worker's weight-lifecycle methods (DESIGN.md §1, §3.3–3.7), registered in its method
// registry: update_config, reload_weights, stage_weights, commit_weights,
// abort_staged_weights, rollback_weights, release_previous_weights, save_sharded_state,
// init_weight_update_group,
// update_weights_from_distributed, destroy_weight_update_group.
//
// The controller drives them: it assigns versions, runs every method on all ranks at once, and
// orders commits and in-place reloads between steps. Arguments (JSON):
//   update_config {"patch": {...merge patch...}, "dry_run": bool}
//   reload_weights {"version": V}                       in place, from the current load config
//   stage_weights {"version": V, "source": {load_config fields}?}
//   commit_weights {"version": V, "keep_previous": bool}  a switch; kept: the replaced set stays
//   abort_staged_weights {}
//   rollback_weights {"version": V}                     the kept set serves again, as V
//   release_previous_weights {}
//   save_sharded_state {"path": DIR, "max_file_size": BYTES?}
//   init_weight_update_group {"group": NAME, "world_size": 1 + tp, "rendezvous_id": ID,
//                             "backend": "gloo" | "nccl"}
//                            the trainer is rank 0; they meet in the controller's store under
//                            update/NAME/ID, and ID must be fresh for every join; nccl (GPU
//                            ranks only) takes the unique id the trainer stores there
//   update_weights_from_distributed {"group": NAME, "version": V,
//                                    "tensors": [{"name", "dtype", "shape"}, ...]}
//   destroy_weight_update_group {"group": NAME}
// Bad arguments are InvalidArgument naming the field and change nothing.
#ifndef LOOM_WORKER_WEIGHT_METHODS_H_
#define LOOM_WORKER_WEIGHT_METHODS_H_

#include <chrono>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/engine_config.h"
#include "common/model_config.h"
#include "worker/comm/communicator.h"
#include "worker/method_registry.h"
#include "worker/weight_manager.h"

namespace gloo::rendezvous {
class Store;
}  // namespace gloo::rendezvous

namespace loom {

struct WeightMethodsOptions {
  int rank = 0;
  int world_size = 1;
  std::string hostname = "127.0.0.1";
  // Where update groups meet (the controller's store); null when there is none.
  std::shared_ptr<gloo::rendezvous::Store> store;
  std::chrono::milliseconds timeout = std::chrono::minutes(10);
};

class WeightMethods {
 public:
  WeightMethods(const WeightMethodsOptions& options, const EngineConfig& config,
                WeightManager* weights, Decoder* serving);

  // Registers every method; each forwards to `*target` once it is set (FailedPrecondition
  // before the worker is initialised).
  static absl::Status Register(MethodRegistry& registry,
                               std::function<WeightMethods*()> target);

  absl::StatusOr<nlohmann::json> UpdateConfig(const nlohmann::json& args);
  absl::StatusOr<nlohmann::json> ReloadWeights(const nlohmann::json& args);
  absl::StatusOr<nlohmann::json> StageWeights(const nlohmann::json& args);
  absl::StatusOr<nlohmann::json> CommitWeights(const nlohmann::json& args);
  absl::StatusOr<nlohmann::json> AbortStagedWeights(const nlohmann::json& args);
  absl::StatusOr<nlohmann::json> RollbackWeights(const nlohmann::json& args);
  absl::StatusOr<nlohmann::json> ReleasePreviousWeights(const nlohmann::json& args);
  absl::StatusOr<nlohmann::json> SaveShardedState(const nlohmann::json& args);
  absl::StatusOr<nlohmann::json> InitWeightUpdateGroup(const nlohmann::json& args);
  absl::StatusOr<nlohmann::json> UpdateWeightsFromDistributed(const nlohmann::json& args);
  absl::StatusOr<nlohmann::json> DestroyWeightUpdateGroup(const nlohmann::json& args);

  EngineConfig config() const;

 private:
  absl::StatusOr<Communicator*> Group(const std::string& name);
  // `base` with `patch` applied and validated, its model directory checked to hold the serving
  // model's architecture and shape.
  absl::StatusOr<EngineConfig> Patched(const EngineConfig& base,
                                       const nlohmann::json& patch) const;

  const WeightMethodsOptions options_;
  WeightManager* const weights_;
  Decoder* const serving_;
  mutable absl::Mutex mu_;
  EngineConfig config_ ABSL_GUARDED_BY(mu_);
  LoadConfig staged_load_ ABSL_GUARDED_BY(mu_);  // what the staged set was loaded from
  LoadConfig previous_load_ ABSL_GUARDED_BY(mu_);  // and the kept previous set
  std::map<std::string, std::unique_ptr<Communicator>> groups_ ABSL_GUARDED_BY(mu_);
};

}  // namespace loom

#endif  // LOOM_WORKER_WEIGHT_METHODS_H_
