// How much of a device's memory the KV cache gets (DESIGN.md; `--gpu-memory-utilization`):
// after the weights are loaded and one profiling step at max_num_batched_tokens has run, the KV
// cache takes what is left of utilization × total, less the room promised to one staged weight
// set. Pure arithmetic over measured figures, so the GPU worker and its CPU tests run the same
// rule; errors carry every figure.
#ifndef LOOM_WORKER_MEMORY_PLAN_H_
#define LOOM_WORKER_MEMORY_PLAN_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace loom {

struct MemoryFigures {
  int64_t total_bytes = 0;  // the device's memory
  // Free after the weights loaded and the profiling step ran (so it already excludes the
  // weights, the step's workspace and whatever other processes hold).
  int64_t free_bytes = 0;
  int64_t weight_bytes = 0;      // one weight set, as loaded
  int64_t peak_step_bytes = 0;   // the profiling step's peak beyond its planned workspace
  int64_t staging_bytes = 0;     // kept free for one staged set (0: --staging-memory none)
  int64_t block_bytes = 0;       // one KV block: every layer's K and V
  double utilization = 0.9;      // the share of total_bytes this rank may use, in (0, 1]
};

struct MemoryPlan {
  int64_t kv_bytes = 0;
  int64_t num_blocks = 0;
  // "weights 1.19 GB, step peak 0.21 GB, staging 1.19 GB, KV 120.3 GB (8213 blocks) of
  // 0.90 × 139.8 GB" — what describe and `loom status` show.
  std::string summary;
};

// The KV cache for `f`: blocks = floor(kv_bytes / block_bytes) with
// kv_bytes = utilization × total − (total − free) − peak_step − staging. InvalidArgument for
// figures that cannot be (negative, free > total, utilization outside (0, 1], no block size);
// ResourceExhausted, naming every figure, when not one block fits.
absl::StatusOr<MemoryPlan> PlanKvCache(const MemoryFigures& f);

}  // namespace loom

#endif  // LOOM_WORKER_MEMORY_PLAN_H_
