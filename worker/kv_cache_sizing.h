// The GPU rank's KV cache sizing (`--gpu-memory-utilization`, `--staging-memory`): with the
// weights loaded, one profiling step of the largest size the scheduler sends runs through the
// model, then the device's memory figures go through PlanKvCache (memory_plan.h) and the cache
// is reallocated to the plan. Device-neutral — it reads memory through the ExecutionContext — so
// the CPU tests run it, with a device whose figures they choose, exactly as a GPU rank does.
#ifndef LOOM_WORKER_KV_CACHE_SIZING_H_
#define LOOM_WORKER_KV_CACHE_SIZING_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "common/engine_config.h"
#include "worker/memory_plan.h"
#include "worker/model_runner.h"

namespace loom {

// Blocks of `block_size` that hold a profiling step of `tokens` tokens (the cache a GPU rank
// starts with, before SizeKvCache).
int64_t ProfileBlocks(int64_t tokens, int64_t block_size);

// Runs a step of `profile_tokens` tokens of one sequence (greedy, one sampled row) on `runner`,
// whose cache must hold them, then plans from the context's memory: what the step's cache holds
// counts as free (it goes), one weight set is kept free when cache.staging_memory is "auto".
// On success the runner's cache is replaced by the plan's; on error (ResourceExhausted naming
// every figure when not one block fits) the runner is unchanged.
absl::StatusOr<MemoryPlan> SizeKvCache(ModelRunner& runner, const CacheConfig& cache,
                                       int64_t profile_tokens);

}  // namespace loom

#endif  // LOOM_WORKER_KV_CACHE_SIZING_H_
