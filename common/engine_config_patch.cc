#include "common/engine_config_patch.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/engine_config_json.h"
#include "common/status.h"

namespace loom {
namespace {

using nlohmann::json;

// The first null in `patch` (depth first, at key path `path`), named.
absl::Status RejectNulls(const json& patch, const std::string& path) {
  for (const auto& [key, value] : patch.items()) {
    const std::string key_path = path.empty() ? key : absl::StrCat(path, ".", key);
    if (value.is_null()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "config patch: \"", key_path, "\" is null; settings cannot be removed, only changed"));
    }
    if (value.is_object()) LOOM_RETURN_IF_ERROR(RejectNulls(value, key_path));
  }
  return absl::OkStatus();
}

// "/load_config/model" (a JSON pointer from json::flatten) -> "load_config.model".
std::string KeyPath(const std::string& pointer) {
  std::string path = pointer.substr(1);
  std::replace(path.begin(), path.end(), '/', '.');
  return path;
}

}  // namespace

std::vector<std::string> RuntimeConfigKeys() {
  return {"load_config.model", "load_config.load_format", "load_config.strategy",
          "load_config.dummy_seed", "load_config.dummy_range", "load_config.stage_share"};
}

absl::StatusOr<EngineConfig> ApplyConfigPatch(const EngineConfig& current,
                                              const std::string& patch_json) {
  json patch = json::parse(patch_json, nullptr, /*allow_exceptions=*/false);
  if (patch.is_discarded()) return absl::InvalidArgumentError("config patch: not valid JSON");
  if (!patch.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat("config patch: expected a JSON object, got ", std::string(patch.type_name())));
  }
  LOOM_RETURN_IF_ERROR(RejectNulls(patch, ""));

  // Both sides go through EngineConfigToJson, so equal settings compare equal whatever spelling
  // the patch used ("bf16" vs "bfloat16", 1 vs 1.0).
  json before = json::parse(EngineConfigToJson(current));
  json merged = before;
  merged.merge_patch(patch);
  absl::StatusOr<EngineConfig> next = EngineConfigFromJson(merged.dump());
  if (!next.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("config patch: ", std::string(next.status().message())));
  }
  json after = json::parse(EngineConfigToJson(*next));

  const std::vector<std::string> runtime = RuntimeConfigKeys();
  const json old_leaves = before.flatten(), new_leaves = after.flatten();
  std::vector<std::string> fixed_changes;
  for (const auto& [pointer, value] : new_leaves.items()) {
    auto old = old_leaves.find(pointer);
    if (old != old_leaves.end() && *old == value) continue;
    std::string key = KeyPath(pointer);
    if (std::find(runtime.begin(), runtime.end(), key) == runtime.end()) {
      fixed_changes.push_back(std::move(key));
    }
  }
  if (!fixed_changes.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "config patch: ", absl::StrJoin(fixed_changes, ", "),
        " cannot change at run time (settings that can: ", absl::StrJoin(runtime, ", "), ")"));
  }

  if (absl::Status s = next->Validate(); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("config patch: ", std::string(s.message())));
  }
  return *std::move(next);
}

}  // namespace loom
