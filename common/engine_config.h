// EngineConfig: the one place for every setting of an engine (DESIGN.md §3.7).
#ifndef LOOM_COMMON_ENGINE_CONFIG_H_
#define LOOM_COMMON_ENGINE_CONFIG_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "common/dtype.h"

namespace loom {

struct LoadConfig {
  std::string model;                  // HF model directory
  std::string load_format = "auto";   // "auto": safetensors from `model`
  DType weight_dtype = DType::kBF16;  // in-memory storage of matmul/embedding weights
};

struct CacheConfig {
  int64_t block_size = 16;
  int64_t kv_cache_bytes = int64_t{2} << 30;  // memory budget for K and V of all layers
};

struct SchedulerConfig {
  int64_t max_num_seqs = 64;             // sequences in one step
  int64_t max_num_batched_tokens = 2048;  // tokens in one step (prompt chunks + decodes)
  int64_t max_model_len = 0;             // prompt + output; 0 = the model's max positions
};

struct EngineConfig {
  LoadConfig load;
  CacheConfig cache;
  SchedulerConfig scheduler;
  int num_threads = 0;  // CPU threads for kernels; 0 = all cores

  absl::Status Validate() const;
};

}  // namespace loom

#endif  // LOOM_COMMON_ENGINE_CONFIG_H_
