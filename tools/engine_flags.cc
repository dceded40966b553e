#include "tools/engine_flags.h"

#include <algorithm>
#include <array>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status.h"

namespace loom::cli {
namespace {

// The value of --`name` if it is one of `allowed`, else an error naming the flag.
template <size_t N>
absl::StatusOr<std::string> OneOf(const Flags& flags, const std::string& name,
                                  const std::string& fallback,
                                  const std::array<const char*, N>& allowed) {
  std::string value = flags.String(name, fallback);
  if (std::find(allowed.begin(), allowed.end(), value) != allowed.end()) return value;
  return absl::InvalidArgumentError(
      absl::StrCat("--", name, ": \"", value, "\" is not one of ", absl::StrJoin(allowed, ", ")));
}

}  // namespace

std::vector<FlagSpec> EngineFlagSpecs() {
  return {
      {"model", false, "HF model directory (config.json + *.safetensors)", ""},
      {"load-format", false,
       "where weights come from: auto (safetensors in --model), dummy (random), sharded_state",
       "auto"},
      {"load-strategy", false,
       "per_rank (each rank reads its part) or broadcast (rank 0 reads and sends)", "per_rank"},
      {"dummy-seed", false, "seed of --load-format dummy weights", "0"},
      {"dummy-range", false, "dummy weights are uniform in +-this", "0.001"},
      {"stage-share", false,
       "share of time a stage may spend loading while the rank serves steps, in (0, 1]", "1"},
      {"weight-dtype", false, "in-memory weight type: auto (the checkpoint's own), float16, bfloat16 or float32", "auto"},
      {"kv-cache-memory", false, "memory for the paged KV cache of CPU ranks, e.g. 512M, 2G", "2G"},
      {"gpu-memory-utilization", false,
       "share of each GPU's memory a GPU rank may use; its KV cache gets what weights and the "
       "step's peak leave", "0.9"},
      {"staging-memory", false,
       "auto (keep room for one staged weight set on each GPU) or none", "auto"},
      {"block-size", false, "tokens per KV block", "16"},
      {"max-num-seqs", false, "most sequences in one step", "64"},
      {"max-num-batched-tokens", false, "most tokens in one step", "2048"},
      {"max-model-len", false, "longest prompt + output (0 = the model's limit)", "0"},
      {"threads", false, "CPU threads (0 = all cores)", "0"},
      {"no-prefix-caching", true, "compute every prompt in full (no KV blocks shared between requests)", ""},
      {"enforce-eager", true, "GPU ranks: run decode steps kernel by kernel, without device graphs", ""},
  };
}

absl::StatusOr<EngineConfig> EngineConfigFromFlags(const Flags& flags) {
  EngineConfig c;
  c.load.model = flags.String("model");
  if (c.load.model.empty()) return absl::InvalidArgumentError("--model DIR is required");
  LOOM_ASSIGN_OR_RETURN(c.load.load_format,
                        OneOf(flags, "load-format", c.load.load_format, kLoadFormats));
  LOOM_ASSIGN_OR_RETURN(c.load.strategy,
                        OneOf(flags, "load-strategy", c.load.strategy, kLoadStrategies));
  LOOM_ASSIGN_OR_RETURN(c.load.dummy_seed, flags.Uint("dummy-seed", c.load.dummy_seed));
  LOOM_ASSIGN_OR_RETURN(c.load.dummy_range, flags.Double("dummy-range", c.load.dummy_range));
  LOOM_ASSIGN_OR_RETURN(c.load.stage_share, flags.Double("stage-share", c.load.stage_share));
  if (!(c.load.dummy_range > 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--dummy-range: \"", flags.String("dummy-range"), "\" must be > 0"));
  }
  if (const std::string dtype = flags.String("weight-dtype", "auto"); dtype != "auto") {
    absl::StatusOr<DType> parsed = ParseFloatDTypeName(dtype);
    if (!parsed.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--weight-dtype: ", parsed.status().message(), " or auto"));
    }
    c.load.weight_dtype = *parsed;
  }
  LOOM_ASSIGN_OR_RETURN(c.cache.kv_cache_bytes,
                        flags.Bytes("kv-cache-memory", c.cache.kv_cache_bytes));
  LOOM_ASSIGN_OR_RETURN(c.cache.gpu_memory_utilization,
                        flags.Double("gpu-memory-utilization", c.cache.gpu_memory_utilization));
  c.cache.staging_memory = flags.String("staging-memory", c.cache.staging_memory);
  LOOM_ASSIGN_OR_RETURN(c.cache.block_size, flags.Int("block-size", c.cache.block_size));
  LOOM_ASSIGN_OR_RETURN(c.scheduler.max_num_seqs,
                        flags.Int("max-num-seqs", c.scheduler.max_num_seqs));
  LOOM_ASSIGN_OR_RETURN(c.scheduler.max_num_batched_tokens,
                        flags.Int("max-num-batched-tokens", c.scheduler.max_num_batched_tokens));
  LOOM_ASSIGN_OR_RETURN(c.scheduler.max_model_len, flags.Int("max-model-len", 0));
  LOOM_ASSIGN_OR_RETURN(int64_t threads, flags.Int("threads", 0));
  c.num_threads = static_cast<int>(threads);
  c.enforce_eager = flags.Bool("enforce-eager");
  c.scheduler.enable_prefix_caching = !flags.Bool("no-prefix-caching");
  LOOM_RETURN_IF_ERROR(c.Validate());
  return c;
}

}  // namespace loom::cli
