#include "common/engine_config_json.h"

#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/json_fields.h"
#include "common/status.h"

namespace loom {
namespace {

using nlohmann::json;

// Unknown keys in `object` (at `path`) are an error listing the known ones.
absl::Status CheckKeys(const json& object, const std::string& path,
                       const std::set<std::string>& known) {
  if (!object.is_object()) {
    std::string where = path.empty() ? "config" : path.substr(0, path.size() - 1);
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": expected an object, got ", std::string(object.type_name())));
  }
  for (const auto& [key, value] : object.items()) {
    if (known.count(key) == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "unknown key \"", path, key, "\" (known: ", absl::StrJoin(known, ", "), ")"));
    }
  }
  return absl::OkStatus();
}

// The engine config is written by Loom itself: nothing is lenient, null included (a merge-patch
// null has been applied before this parser sees the document).
JsonPlace Strict(const std::string& path) {
  return JsonPlace{.path = path, .null_is_absent = false, .integral_floats = false};
}

absl::Status ReadLoadConfig(const json& j, LoadConfig& load) {
  const std::string p = "load_config.";
  const JsonPlace place = Strict("load_config");
  LOOM_RETURN_IF_ERROR(CheckKeys(
      j, p, {"model", "load_format", "strategy", "dummy_seed", "dummy_range", "weight_dtype",
                                  "stage_share"}));
  LOOM_ASSIGN_OR_RETURN(load.model, JsonString(j, "model", place, load.model));
  LOOM_ASSIGN_OR_RETURN(load.load_format, JsonString(j, "load_format", place, load.load_format));
  LOOM_ASSIGN_OR_RETURN(load.strategy, JsonString(j, "strategy", place, load.strategy));
  LOOM_ASSIGN_OR_RETURN(load.dummy_seed, JsonUint(j, "dummy_seed", place, load.dummy_seed));
  LOOM_ASSIGN_OR_RETURN(load.dummy_range, JsonNumber(j, "dummy_range", place, load.dummy_range));
  LOOM_ASSIGN_OR_RETURN(load.stage_share, JsonNumber(j, "stage_share", place, load.stage_share));
  LOOM_ASSIGN_OR_RETURN(const std::string dtype, JsonString(j, "weight_dtype", place, ""));
  if (dtype == "auto") {
    load.weight_dtype.reset();
  } else if (j.contains("weight_dtype")) {
    absl::StatusOr<DType> parsed = ParseFloatDTypeName(dtype);
    if (!parsed.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(p, "weight_dtype: ", std::string(parsed.status().message())));
    }
    load.weight_dtype = *parsed;
  }
  return absl::OkStatus();
}

}  // namespace

std::string EngineConfigToJson(const EngineConfig& config) {
  json j = {
      {"load_config",
       {{"model", config.load.model},
        {"load_format", config.load.load_format},
        {"strategy", config.load.strategy},
        {"dummy_seed", config.load.dummy_seed},
        {"dummy_range", config.load.dummy_range},
        {"stage_share", config.load.stage_share},
        {"weight_dtype", config.load.weight_dtype ? FloatDTypeName(*config.load.weight_dtype)
                                                  : "auto"}}},
      {"cache_config",
       {{"block_size", config.cache.block_size},
        {"kv_cache_bytes", config.cache.kv_cache_bytes},
        {"gpu_memory_utilization", config.cache.gpu_memory_utilization},
        {"staging_memory", config.cache.staging_memory}}},
      {"scheduler_config",
       {{"max_num_seqs", config.scheduler.max_num_seqs},
        {"max_num_batched_tokens", config.scheduler.max_num_batched_tokens},
        {"max_model_len", config.scheduler.max_model_len},
        {"enable_prefix_caching", config.scheduler.enable_prefix_caching}}},
      {"num_threads", config.num_threads},
      {"enforce_eager", config.enforce_eager},
  };
  return j.dump();
}

absl::StatusOr<EngineConfig> EngineConfigFromJson(const std::string& json_text) {
  json j = json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return absl::InvalidArgumentError("engine config: not valid JSON");
  LOOM_RETURN_IF_ERROR(
      CheckKeys(j, "", {"load_config", "cache_config", "scheduler_config", "num_threads",
                        "enforce_eager"}));
  EngineConfig config;
  if (auto it = j.find("load_config"); it != j.end()) {
    LOOM_RETURN_IF_ERROR(ReadLoadConfig(*it, config.load));
  }
  if (auto it = j.find("cache_config"); it != j.end()) {
    const std::string p = "cache_config.";
    const JsonPlace place = Strict("cache_config");
    LOOM_RETURN_IF_ERROR(CheckKeys(
        *it, p, {"block_size", "kv_cache_bytes", "gpu_memory_utilization", "staging_memory"}));
    LOOM_ASSIGN_OR_RETURN(config.cache.block_size,
                          JsonInt(*it, "block_size", place, config.cache.block_size));
    LOOM_ASSIGN_OR_RETURN(config.cache.kv_cache_bytes,
                          JsonInt(*it, "kv_cache_bytes", place, config.cache.kv_cache_bytes));
    LOOM_ASSIGN_OR_RETURN(config.cache.gpu_memory_utilization,
                          JsonNumber(*it, "gpu_memory_utilization", place,
                                     config.cache.gpu_memory_utilization));
    LOOM_ASSIGN_OR_RETURN(
        config.cache.staging_memory,
        JsonString(*it, "staging_memory", place, config.cache.staging_memory));
  }
  if (auto it = j.find("scheduler_config"); it != j.end()) {
    const std::string p = "scheduler_config.";
    const JsonPlace place = Strict("scheduler_config");
    LOOM_RETURN_IF_ERROR(
        CheckKeys(*it, p, {"max_num_seqs", "max_num_batched_tokens", "max_model_len",
                           "enable_prefix_caching"}));
    LOOM_ASSIGN_OR_RETURN(config.scheduler.max_num_seqs,
                          JsonInt(*it, "max_num_seqs", place, config.scheduler.max_num_seqs));
    LOOM_ASSIGN_OR_RETURN(
        config.scheduler.max_num_batched_tokens,
        JsonInt(*it, "max_num_batched_tokens", place, config.scheduler.max_num_batched_tokens));
    LOOM_ASSIGN_OR_RETURN(config.scheduler.max_model_len,
                          JsonInt(*it, "max_model_len", place, config.scheduler.max_model_len));
    LOOM_ASSIGN_OR_RETURN(config.scheduler.enable_prefix_caching,
                          JsonBool(*it, "enable_prefix_caching", place,
                                   config.scheduler.enable_prefix_caching));
  }
  LOOM_ASSIGN_OR_RETURN(const int64_t threads,
                        JsonInt(j, "num_threads", Strict(""), config.num_threads));
  if (threads < std::numeric_limits<int>::min() || threads > std::numeric_limits<int>::max()) {
    return absl::InvalidArgumentError("num_threads: out of range");
  }
  config.num_threads = static_cast<int>(threads);
  LOOM_ASSIGN_OR_RETURN(config.enforce_eager,
                        JsonBool(j, "enforce_eager", Strict(""), config.enforce_eager));
  return config;
}

}  // namespace loom
