#include "common/engine_config_json.h"

#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
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

absl::Status TypeError(const std::string& path, const char* key, const char* expected,
                       const json& value) {
  return absl::InvalidArgumentError(
      absl::StrCat(path, key, ": expected ", expected, ", got ", std::string(value.type_name())));
}

absl::Status ReadInt(const json& object, const std::string& path, const char* key, int64_t& out) {
  auto it = object.find(key);
  if (it == object.end()) return absl::OkStatus();
  if (!it->is_number_integer()) return TypeError(path, key, "an integer", *it);
  if (it->is_number_unsigned() &&
      it->get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    return absl::InvalidArgumentError(absl::StrCat(path, key, ": out of range"));
  }
  out = it->get<int64_t>();
  return absl::OkStatus();
}

absl::Status ReadUnsigned(const json& object, const std::string& path, const char* key,
                          uint64_t& out) {
  auto it = object.find(key);
  if (it == object.end()) return absl::OkStatus();
  if (!it->is_number_unsigned()) return TypeError(path, key, "an unsigned integer", *it);
  out = it->get<uint64_t>();
  return absl::OkStatus();
}

absl::Status ReadNumber(const json& object, const std::string& path, const char* key, double& out) {
  auto it = object.find(key);
  if (it == object.end()) return absl::OkStatus();
  if (!it->is_number()) return TypeError(path, key, "a number", *it);
  out = it->get<double>();
  return absl::OkStatus();
}

absl::Status ReadString(const json& object, const std::string& path, const char* key,
                        std::string& out) {
  auto it = object.find(key);
  if (it == object.end()) return absl::OkStatus();
  if (!it->is_string()) return TypeError(path, key, "a string", *it);
  out = it->get<std::string>();
  return absl::OkStatus();
}

absl::Status ReadLoadConfig(const json& j, LoadConfig& load) {
  const std::string p = "load_config.";
  LOOM_RETURN_IF_ERROR(CheckKeys(
      j, p, {"model", "load_format", "strategy", "dummy_seed", "dummy_range", "weight_dtype"}));
  LOOM_RETURN_IF_ERROR(ReadString(j, p, "model", load.model));
  LOOM_RETURN_IF_ERROR(ReadString(j, p, "load_format", load.load_format));
  LOOM_RETURN_IF_ERROR(ReadString(j, p, "strategy", load.strategy));
  LOOM_RETURN_IF_ERROR(ReadUnsigned(j, p, "dummy_seed", load.dummy_seed));
  LOOM_RETURN_IF_ERROR(ReadNumber(j, p, "dummy_range", load.dummy_range));
  std::string dtype;
  LOOM_RETURN_IF_ERROR(ReadString(j, p, "weight_dtype", dtype));
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
        {"weight_dtype", config.load.weight_dtype ? FloatDTypeName(*config.load.weight_dtype)
                                                  : "auto"}}},
      {"cache_config",
       {{"block_size", config.cache.block_size}, {"kv_cache_bytes", config.cache.kv_cache_bytes}}},
      {"scheduler_config",
       {{"max_num_seqs", config.scheduler.max_num_seqs},
        {"max_num_batched_tokens", config.scheduler.max_num_batched_tokens},
        {"max_model_len", config.scheduler.max_model_len}}},
      {"num_threads", config.num_threads},
  };
  return j.dump();
}

absl::StatusOr<EngineConfig> EngineConfigFromJson(const std::string& json_text) {
  json j = json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return absl::InvalidArgumentError("engine config: not valid JSON");
  LOOM_RETURN_IF_ERROR(
      CheckKeys(j, "", {"load_config", "cache_config", "scheduler_config", "num_threads"}));
  EngineConfig config;
  if (auto it = j.find("load_config"); it != j.end()) {
    LOOM_RETURN_IF_ERROR(ReadLoadConfig(*it, config.load));
  }
  if (auto it = j.find("cache_config"); it != j.end()) {
    const std::string p = "cache_config.";
    LOOM_RETURN_IF_ERROR(CheckKeys(*it, p, {"block_size", "kv_cache_bytes"}));
    LOOM_RETURN_IF_ERROR(ReadInt(*it, p, "block_size", config.cache.block_size));
    LOOM_RETURN_IF_ERROR(ReadInt(*it, p, "kv_cache_bytes", config.cache.kv_cache_bytes));
  }
  if (auto it = j.find("scheduler_config"); it != j.end()) {
    const std::string p = "scheduler_config.";
    LOOM_RETURN_IF_ERROR(
        CheckKeys(*it, p, {"max_num_seqs", "max_num_batched_tokens", "max_model_len"}));
    LOOM_RETURN_IF_ERROR(ReadInt(*it, p, "max_num_seqs", config.scheduler.max_num_seqs));
    LOOM_RETURN_IF_ERROR(
        ReadInt(*it, p, "max_num_batched_tokens", config.scheduler.max_num_batched_tokens));
    LOOM_RETURN_IF_ERROR(ReadInt(*it, p, "max_model_len", config.scheduler.max_model_len));
  }
  int64_t threads = config.num_threads;
  LOOM_RETURN_IF_ERROR(ReadInt(j, "", "num_threads", threads));
  if (threads < std::numeric_limits<int>::min() || threads > std::numeric_limits<int>::max()) {
    return absl::InvalidArgumentError("num_threads: out of range");
  }
  config.num_threads = static_cast<int>(threads);
  return config;
}

}  // namespace loom
