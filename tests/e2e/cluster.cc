#include "tests/e2e/cluster.h"

#include <map>

#include "common/model_config.h"
#include "common/status.h"
#include "controller/scheduler.h"
#include "tests/test_paths.h"

namespace loom::testing {

std::string WorkerBinary() { return BinaryDir() + "/worker/loom-worker"; }

EngineConfig SmallConfig(const std::string& model_dir) {
  EngineConfig config;
  config.load.model = model_dir;  // weight_dtype: auto, the checkpoint's own
  config.cache.block_size = 4;
  config.cache.kv_cache_bytes = 1 << 20;
  return config;
}

absl::StatusOr<Cluster> StartCluster(const std::string& model_dir, int tp,
                                     SupervisorOptions options) {
  Cluster cluster;
  options.world_size = tp;
  if (options.worker_binary.empty()) options.worker_binary = WorkerBinary();
  options.threads_per_worker = 1;
  options.extra_worker_args.push_back("--enable-test-methods");
  LOOM_ASSIGN_OR_RETURN(cluster.supervisor, Supervisor::Start(options));
  WorkerGroupOptions group;
  group.addresses = cluster.supervisor->worker_addresses();
  Supervisor* supervisor = cluster.supervisor.get();
  group.rank_status = [supervisor](int rank) { return supervisor->RankStatus(rank); };
  LOOM_ASSIGN_OR_RETURN(cluster.group, WorkerGroup::Connect(group));
  cluster.config = SmallConfig(model_dir);
  LOOM_ASSIGN_OR_RETURN(GroupInitResult init, cluster.group->Init(cluster.config));
  cluster.num_kv_blocks = init.num_kv_blocks;
  return cluster;
}

absl::StatusOr<std::vector<std::vector<int32_t>>> GenerateGreedy(
    Cluster& cluster, const std::vector<std::vector<int32_t>>& prompts, int64_t max_tokens) {
  LOOM_ASSIGN_OR_RETURN(ModelConfig model, ModelConfig::FromModelDir(cluster.config.load.model));
  Scheduler scheduler(cluster.config.scheduler, model.MaxContextLength(),
                      cluster.num_kv_blocks, cluster.config.cache.block_size, {});
  std::map<int64_t, size_t> order;
  for (size_t i = 0; i < prompts.size(); ++i) {
    GenerationRequest request;
    request.prompt_ids = prompts[i];
    request.max_tokens = max_tokens;
    request.ignore_eos = true;
    LOOM_ASSIGN_OR_RETURN(int64_t id, scheduler.Add(request));
    order[id] = i;
  }
  std::vector<std::vector<int32_t>> outputs(prompts.size());
  while (scheduler.HasWork()) {
    StepInput step = scheduler.Schedule();
    if (step.sequences.empty()) return absl::InternalError("the scheduler scheduled nothing");
    LOOM_ASSIGN_OR_RETURN(StepOutput out, cluster.group->Step(step));
    for (GenerationResult& r : scheduler.Update(step, out)) {
      outputs[order.at(r.request_id)] = std::move(r.output_ids);
    }
  }
  return outputs;
}

}  // namespace loom::testing
