// EngineConfig: the one place for every setting of an engine (DESIGN.md §3.7).
//
// A plain value type. Validate() checks every setting and names the bad one by its JSON key path
// (e.g. "load_config.dummy_range"), the same path engine_config_json and update_config patches
// use.
#ifndef LOOM_COMMON_ENGINE_CONFIG_H_
#define LOOM_COMMON_ENGINE_CONFIG_H_

#include <array>
#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "common/dtype.h"

namespace loom {

// The values LoadConfig::load_format and LoadConfig::strategy accept.
inline constexpr std::array<const char*, 3> kLoadFormats = {"auto", "dummy", "sharded_state"};
inline constexpr std::array<const char*, 2> kLoadStrategies = {"per_rank", "broadcast"};

struct LoadConfig {
  std::string model;  // HF model directory (config.json, tokenizer, and for "auto" the weights)
  // "auto": safetensors from `model`; "dummy": random weights (see dummy_seed); "sharded_state":
  // per-rank files written by save_sharded_state.
  std::string load_format = "auto";
  // "per_rank": every rank reads its own part; "broadcast": rank 0 reads each full tensor and
  // broadcasts it through the communicator, every rank keeping its part (no other rank opens a
  // file; the wire carries whole tensors — see docs/weights.md).
  std::string strategy = "per_rank";
  // Dummy weights are uniform in ±dummy_range, from a counter-based generator keyed by
  // (dummy_seed, parameter name, global element index): the same model at every TP size.
  uint64_t dummy_seed = 0;
  double dummy_range = 1e-3;
  // In-memory storage of matmul/embedding weights: f32, bf16 or f16. Unset ("auto") = the
  // checkpoint's own type (ResolveWeightDType), so a user's weights are never silently rounded.
  std::optional<DType> weight_dtype;
  // The share of wall time a stage (stage_weights, a staged reload) may spend loading while the
  // rank is serving steps, in (0, 1]; it sleeps the rest between chunks of its reads. 1 (the
  // default) never waits: a lower share protects decode but can stretch a stage past its RPC
  // deadline on a machine the steps keep busy (docs/weights.md has the measured trade). An idle
  // rank's stage always runs flat out (worker/loader/stage_pacer.h).
  double stage_share = 1.0;
};

struct CacheConfig {
  int64_t block_size = 16;
  int64_t kv_cache_bytes = int64_t{2} << 30;  // host ranks: memory for K and V of all layers
  // GPU ranks size their cache from the device instead (worker/memory_plan.h): this share of
  // the device's memory, in (0, 1], less weights, the step's peak and the staging room.
  double gpu_memory_utilization = 0.9;
  // "auto": room for one staged weight set is kept free, so a stage never fails for memory it
  // was promised; "none": the KV cache takes it too.
  std::string staging_memory = "auto";
};

struct SchedulerConfig {
  int64_t max_num_seqs = 64;              // sequences in one step
  int64_t max_num_batched_tokens = 2048;  // tokens in one step (prompt chunks + decodes)
  int64_t max_model_len = 0;              // prompt + output; 0 = the model's max positions
  // Full KV blocks of earlier requests are reused by later ones with the same leading tokens
  // and weights (controller/block_manager.h); off for dynamic-RoPE models, whose KV depends on
  // the sequence's length.
  bool enable_prefix_caching = true;
};

struct EngineConfig {
  LoadConfig load;
  CacheConfig cache;
  SchedulerConfig scheduler;
  int num_threads = 0;  // CPU threads for kernels; 0 = all cores
  // GPU ranks replay decode steps from device graphs unless this is set (worker/decode_graphs.h).
  bool enforce_eager = false;

  // InvalidArgument naming the first bad setting by its key path.
  absl::Status Validate() const;
};

}  // namespace loom

#endif  // LOOM_COMMON_ENGINE_CONFIG_H_
