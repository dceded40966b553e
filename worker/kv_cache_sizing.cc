#include "worker/kv_cache_sizing.h"

#include <numeric>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "common/step.h"

namespace loom {

int64_t ProfileBlocks(int64_t tokens, int64_t block_size) {
  return (tokens + block_size - 1) / block_size;
}

absl::StatusOr<MemoryPlan> SizeKvCache(ModelRunner& runner, const CacheConfig& cache,
                                       int64_t profile_tokens) {
  const int64_t bs = runner.block_size();
  if (profile_tokens < 1 || ProfileBlocks(profile_tokens, bs) > runner.num_kv_blocks()) {
    return absl::InvalidArgumentError(absl::StrCat("profiling step of ", profile_tokens,
                                                   " tokens does not fit the starting cache of ",
                                                   runner.num_kv_blocks(), " blocks of ", bs));
  }
  // The largest step: its activations, the kernels' scratch and the LM head's rows are what a
  // serving step can need beyond the weights; they stay allocated (the workspace is reused).
  StepInput step;
  SequenceStep s;
  s.seq_id = 0;
  s.token_ids.assign(static_cast<size_t>(profile_tokens), 0);
  s.start_position = 0;
  s.block_table.resize(static_cast<size_t>(ProfileBlocks(profile_tokens, bs)));
  std::iota(s.block_table.begin(), s.block_table.end(), 0);
  s.sample = true;
  step.sequences.push_back(std::move(s));
  LOOM_RETURN_IF_ERROR(runner.Execute(step).status());
  kernels::ExecutionContext& context = runner.decoder().context();
  LOOM_RETURN_IF_ERROR(context.Synchronize());
  LOOM_ASSIGN_OR_RETURN(const kernels::DeviceMemory memory, context.Memory());

  MemoryFigures f;
  f.total_bytes = memory.total_bytes;
  // The profiling cache is released before the real one is allocated.
  f.free_bytes = std::min(memory.total_bytes, memory.free_bytes + runner.kv_cache().nbytes());
  f.weight_bytes = runner.decoder().WeightBytes();
  f.peak_step_bytes = 0;  // the step's workspace and scratch are held, so `free` excludes them
  f.staging_bytes = cache.staging_memory == "none" ? 0 : f.weight_bytes;
  f.block_bytes = runner.kv_cache().shape().BytesPerBlock();
  f.utilization = cache.gpu_memory_utilization;
  LOOM_ASSIGN_OR_RETURN(MemoryPlan plan, PlanKvCache(f));
  LOOM_RETURN_IF_ERROR(runner.ResizeKvCache(plan.kv_bytes));
  return plan;
}

}  // namespace loom
