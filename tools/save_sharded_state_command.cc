// `loom save-sharded-state`: loads a model on N worker processes (as `loom serve --tp N` would)
// and has every rank write its shard, so later starts at any TP size read per-rank files
// (load format sharded_state). The output is a complete model directory.
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status.h"
#include "controller/serving_engine.h"
#include "tools/commands.h"
#include "tools/engine_flags.h"

namespace loom::cli {
namespace {

std::vector<FlagSpec> SaveFlagSpecs() {
  std::vector<FlagSpec> specs = EngineFlagSpecs();
  std::vector<FlagSpec> more = {
      {"tp", false, "tensor-parallel size of the saved shards", "1"},
      {"output", false, "directory to write (created; a complete model directory)", ""},
      {"max-file-size", false, "bytes of tensor data per file (0 = one file per rank)", "0"},
      {"worker-binary", false, "the loom-worker executable", "beside loom"},
      {"rpc-timeout", false, "deadline of the save, in seconds", "600"},
      {"help", true, "show this help", ""},
  };
  specs.insert(specs.end(), more.begin(), more.end());
  return specs;
}

absl::Status Run(const Flags& flags) {
  ServingEngineOptions options;
  LOOM_ASSIGN_OR_RETURN(options.config, EngineConfigFromFlags(flags));
  LOOM_ASSIGN_OR_RETURN(int64_t tp, flags.Int("tp", 1));
  if (tp < 1 || tp > 1024) return absl::InvalidArgumentError("--tp must be in [1, 1024]");
  const std::string output = flags.String("output", "");
  if (output.empty()) return absl::InvalidArgumentError("--output is required");
  LOOM_ASSIGN_OR_RETURN(int64_t max_file_size, flags.Int("max-file-size", 0));
  if (max_file_size < 0) return absl::InvalidArgumentError("--max-file-size must not be negative");
  LOOM_ASSIGN_OR_RETURN(int64_t timeout_s, flags.Int("rpc-timeout", 600));
  if (timeout_s <= 0) return absl::InvalidArgumentError("--rpc-timeout must be positive");
  std::error_code ec;
  if (std::filesystem::equivalent(output, options.config.load.model, ec)) {
    return absl::InvalidArgumentError("--output must not be the model directory itself");
  }
  // Only the weights are needed: a small cache keeps the workers light.
  options.config.cache.kv_cache_bytes = std::min<int64_t>(options.config.cache.kv_cache_bytes,
                                                          int64_t{64} << 20);
  options.supervisor.world_size = static_cast<int>(tp);
  options.supervisor.worker_binary = flags.String("worker-binary", DefaultWorkerBinary());
  options.supervisor.threads_per_worker = options.config.num_threads;
  LOOM_ASSIGN_OR_RETURN(std::unique_ptr<ServingEngine> engine, ServingEngine::Start(options));
  const nlohmann::json args = {{"path", std::filesystem::absolute(output).string()},
                               {"max_file_size", max_file_size}};
  absl::StatusOr<std::vector<RankResult>> results =
      engine->CollectiveCall("save_sharded_state", args.dump(), std::chrono::seconds(timeout_s));
  engine->Stop();
  LOOM_RETURN_IF_ERROR(results.status());
  std::printf("| rank | files | bytes | seconds | MB/s |\n|---|---|---|---|---|\n");
  for (const RankResult& r : *results) {
    const double bytes = r.result.value("bytes_written", 0.0);
    const double seconds = r.result.value("seconds", 0.0);
    std::printf("| %d | %zu | %.0f | %.3f | %.1f |\n", r.rank, r.result["files"].size(), bytes,
                seconds, seconds > 0 ? bytes / seconds / 1e6 : 0.0);
  }
  std::printf("loom save-sharded-state: wrote %s (tp=%lld); serve it with --load-format "
              "sharded_state --model %s\n",
              output.c_str(), static_cast<long long>(tp), output.c_str());
  return absl::OkStatus();
}

}  // namespace

int SaveShardedStateCommand(int argc, char** argv) {
  return RunVerb("save-sharded-state", argc, argv, SaveFlagSpecs(),
                 "usage: loom save-sharded-state --model DIR --tp N --output OUT "
                 "[--max-file-size BYTES] [options]\n\n"
                 "Loads DIR (any --load-format) on N worker processes and has each rank write\n"
                 "OUT/model-rank-R-part-P.safetensors, plus DIR's config and tokenizer files.\n"
                 "Load OUT later with --load-format sharded_state at any --tp.\n",
                 Run);
}

}  // namespace loom::cli
