#include "common/engine_config_json.h"

#include <cstdint>
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
    return absl::InvalidArgumentError(absl::StrCat(path.empty() ? "config" : path,
                                                   ": expected an object, got ",
                                                   std::string(object.type_name())));
  }
  for (const auto& [key, value] : object.items()) {
    if (known.count(key) == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "unknown key \"", path, key, "\" (known: ", absl::StrJoin(known, ", "), ")"));
    }
  }
  return absl::OkStatus();
}

absl::Status ReadInt(const json& object, const std::string& path, const char* key, int64_t& out) {
  auto it = object.find(key);
  if (it == object.end()) return absl::OkStatus();
  if (!it->is_number_integer()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, key, ": expected an integer, got ", std::string(it->type_name())));
  }
  out = it->get<int64_t>();
  return absl::OkStatus();
}

absl::Status ReadString(const json& object, const std::string& path, const char* key,
                        std::string& out) {
  auto it = object.find(key);
  if (it == object.end()) return absl::OkStatus();
  if (!it->is_string()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, key, ": expected a string, got ", std::string(it->type_name())));
  }
  out = it->get<std::string>();
  return absl::OkStatus();
}

const char* WeightDTypeName(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return "float32";
    case DType::kBF16:
      return "bfloat16";
    case DType::kF16:
      return "float16";
    default:
      return DTypeName(dtype);
  }
}

}  // namespace

std::string EngineConfigToJson(const EngineConfig& config) {
  json j = {
      {"load",
       {{"model", config.load.model},
        {"load_format", config.load.load_format},
        {"weight_dtype", WeightDTypeName(config.load.weight_dtype)}}},
      {"cache",
       {{"block_size", config.cache.block_size}, {"kv_cache_bytes", config.cache.kv_cache_bytes}}},
      {"scheduler",
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
  LOOM_RETURN_IF_ERROR(CheckKeys(j, "", {"load", "cache", "scheduler", "num_threads"}));
  EngineConfig config;
  if (auto it = j.find("load"); it != j.end()) {
    LOOM_RETURN_IF_ERROR(CheckKeys(*it, "load.", {"model", "load_format", "weight_dtype"}));
    LOOM_RETURN_IF_ERROR(ReadString(*it, "load.", "model", config.load.model));
    LOOM_RETURN_IF_ERROR(ReadString(*it, "load.", "load_format", config.load.load_format));
    std::string dtype;
    LOOM_RETURN_IF_ERROR(ReadString(*it, "load.", "weight_dtype", dtype));
    if (!dtype.empty()) {
      LOOM_ASSIGN_OR_RETURN(config.load.weight_dtype, ParseFloatDTypeName(dtype));
    }
  }
  if (auto it = j.find("cache"); it != j.end()) {
    LOOM_RETURN_IF_ERROR(CheckKeys(*it, "cache.", {"block_size", "kv_cache_bytes"}));
    LOOM_RETURN_IF_ERROR(ReadInt(*it, "cache.", "block_size", config.cache.block_size));
    LOOM_RETURN_IF_ERROR(ReadInt(*it, "cache.", "kv_cache_bytes", config.cache.kv_cache_bytes));
  }
  if (auto it = j.find("scheduler"); it != j.end()) {
    LOOM_RETURN_IF_ERROR(
        CheckKeys(*it, "scheduler.", {"max_num_seqs", "max_num_batched_tokens", "max_model_len"}));
    LOOM_RETURN_IF_ERROR(ReadInt(*it, "scheduler.", "max_num_seqs", config.scheduler.max_num_seqs));
    LOOM_RETURN_IF_ERROR(ReadInt(*it, "scheduler.", "max_num_batched_tokens",
                                 config.scheduler.max_num_batched_tokens));
    LOOM_RETURN_IF_ERROR(
        ReadInt(*it, "scheduler.", "max_model_len", config.scheduler.max_model_len));
  }
  int64_t threads = config.num_threads;
  LOOM_RETURN_IF_ERROR(ReadInt(j, "", "num_threads", threads));
  config.num_threads = static_cast<int>(threads);
  return config;
}

}  // namespace loom
