// Engine: the whole generation loop in one process — scheduler, block manager and one model
// runner. The distributed controller replaces the runner with a group of worker processes and
// keeps everything else.
#ifndef LOOM_CONTROLLER_ENGINE_H_
#define LOOM_CONTROLLER_ENGINE_H_

#include <functional>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "common/engine_config.h"
#include "common/model_config.h"
#include "controller/request.h"
#include "controller/scheduler.h"
#include "worker/loader/weight_load.h"
#include "worker/model_runner.h"

namespace loom {

class Engine {
 public:
  // Reads the model directory, builds the model, loads its weights and sizes the KV cache.
  static absl::StatusOr<std::unique_ptr<Engine>> Create(const EngineConfig& config);

  const ModelConfig& model_config() const { return model_config_; }
  const EngineConfig& config() const { return config_; }
  int64_t num_kv_blocks() const { return runner_->num_kv_blocks(); }
  int64_t max_model_len() const { return max_model_len_; }
  const LoadResult& load_report() const { return load_report_; }
  int64_t weight_bytes() const { return runner_->decoder().WeightBytes(); }
  ModelRunner& runner() { return *runner_; }

  absl::StatusOr<int64_t> Add(GenerationRequest request);
  bool HasWork() const { return scheduler_->HasWork(); }

  struct StepStats {
    int64_t num_sequences = 0;
    int64_t num_tokens = 0;  // tokens computed this step
    int64_t num_prefill_tokens = 0;
  };
  // Runs one step; appends sequences that finished to `finished`. `on_token(id, token)` is
  // called for every sampled token.
  absl::StatusOr<StepStats> Step(std::vector<GenerationResult>& finished,
                                 const std::function<void(int64_t, int32_t)>& on_token = {});

  // Runs `requests` together to completion; results in request order.
  absl::StatusOr<std::vector<GenerationResult>> Generate(
      const std::vector<GenerationRequest>& requests);

 private:
  EngineConfig config_;
  ModelConfig model_config_;
  int64_t max_model_len_ = 0;
  LoadResult load_report_;
  std::unique_ptr<ModelRunner> runner_;
  std::unique_ptr<Scheduler> scheduler_;
};

}  // namespace loom

#endif  // LOOM_CONTROLLER_ENGINE_H_
