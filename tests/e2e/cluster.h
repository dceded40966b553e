// A real cluster inside a test: the Supervisor spawns loom-worker processes, the Controller
// service runs in the test process, and a WorkerGroup drives the workers over Unix sockets.
#ifndef LOOM_TESTS_E2E_CLUSTER_H_
#define LOOM_TESTS_E2E_CLUSTER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/engine_config.h"
#include "controller/supervisor.h"
#include "controller/worker_group.h"

namespace loom::testing {

struct Cluster {
  std::unique_ptr<Supervisor> supervisor;
  std::unique_ptr<WorkerGroup> group;
  EngineConfig config;
  int64_t num_kv_blocks = 0;
};

std::string WorkerBinary();
// f32 weights, 4-token blocks, 1 MiB of KV per rank.
EngineConfig SmallConfig(const std::string& model_dir);
// Starts `tp` workers with test methods enabled, connects and initialises them.
absl::StatusOr<Cluster> StartCluster(const std::string& model_dir, int tp,
                                     SupervisorOptions options = {});

// Greedy generation of `max_tokens` tokens for each prompt, batched by the Scheduler, every step
// run by the cluster. Outputs in prompt order.
absl::StatusOr<std::vector<std::vector<int32_t>>> GenerateGreedy(
    Cluster& cluster, const std::vector<std::vector<int32_t>>& prompts, int64_t max_tokens);

}  // namespace loom::testing

#endif  // LOOM_TESTS_E2E_CLUSTER_H_
