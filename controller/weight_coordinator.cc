#include "controller/weight_coordinator.h"

#include <set>

#include "absl/strings/str_cat.h"
#include "common/engine_config_json.h"
#include "common/engine_config_patch.h"
#include "common/status.h"

namespace loom {
namespace {

using nlohmann::json;

int64_t NumberOr(const json& j, const char* key, int64_t fallback) {
  return j.is_object() && j.contains(key) && j[key].is_number_integer() ? j[key].get<int64_t>()
                                                                         : fallback;
}

// An optional boolean field; absent is false, anything but a boolean an error naming it.
absl::StatusOr<bool> BoolArg(const json& args, const char* key) {
  if (!args.is_object() || !args.contains(key)) return false;
  if (!args[key].is_boolean()) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", key, "\": expected true or false, got ", args[key].dump()));
  }
  return args[key].get<bool>();
}

}  // namespace

absl::StatusOr<SwitchPolicy> ParseSwitchPolicy(const json& args) {
  if (!args.is_object() || !args.contains("policy")) return SwitchPolicy::kRecompute;
  const json& p = args["policy"];
  if (p == "recompute") return SwitchPolicy::kRecompute;
  if (p == "abort") return SwitchPolicy::kAbort;
  return absl::InvalidArgumentError(
      absl::StrCat("\"policy\": expected \"recompute\" or \"abort\", got ", p.dump()));
}

WeightCoordinator::WeightCoordinator(const EngineConfig& config,
                                     std::shared_ptr<const ServedModel> model,
                                     WeightCoordinatorHooks hooks)
    : hooks_(std::move(hooks)),
      ranks_model_(model->config()),
      config_(config),
      serving_model_(std::move(model)) {}

absl::StatusOr<std::shared_ptr<const ServedModel>> WeightCoordinator::PrepareModel(
    const EngineConfig& next) {
  std::shared_ptr<const ServedModel> serving;
  {
    absl::MutexLock lock(&mu_);
    serving = serving_model_;
  }
  LOOM_ASSIGN_OR_RETURN(std::shared_ptr<const ServedModel> model,
                        ServedModel::Load(next.load.model, next.scheduler, serving.get()));
  LOOM_RETURN_IF_ERROR(model->CheckCanReplace(ranks_model_));
  return model;
}

bool WeightCoordinator::Handles(const std::string& method) {
  static const std::set<std::string> kMethods = {
      "update_config",        "reload_weights",           "stage_weights",
      "commit_weights",       "abort_staged_weights",     "save_sharded_state",
      "rollback_weights",     "release_previous_weights", "sleep", "wake_up",
      "init_weight_update_group", "update_weights_from_distributed",
      "destroy_weight_update_group"};
  return kMethods.count(method) > 0;
}

uint64_t WeightCoordinator::NextVersion() {
  absl::MutexLock lock(&mu_);
  return ++last_version_;
}

uint64_t WeightCoordinator::Restarted() {
  absl::MutexLock lock(&mu_);
  ++restarts_;
  serving_version_ = ++last_version_;
  staged_version_ = 0;
  staged_model_ = nullptr;
  staged_config_ = config_;
  previous_version_ = 0;
  previous_model_ = nullptr;
  sleep_level_ = 0;
  return serving_version_;
}

uint64_t WeightCoordinator::serving_version() const {
  absl::MutexLock lock(&mu_);
  return serving_version_;
}

uint64_t WeightCoordinator::staged_version() const {
  absl::MutexLock lock(&mu_);
  return staged_version_;
}

EngineConfig WeightCoordinator::config() const {
  absl::MutexLock lock(&mu_);
  return config_;
}

absl::StatusOr<std::vector<RankResult>> WeightCoordinator::Call(
    const std::string& method, const std::string& args_json, std::chrono::milliseconds timeout) {
  json args = args_json.empty() ? json::object()
                                 : json::parse(args_json, nullptr, /*allow_exceptions=*/false);
  if (args.is_discarded()) {
    return absl::InvalidArgumentError(
        absl::StrCat("method ", method, ": args are not valid JSON: ", args_json));
  }
  if (args.is_null()) args = json::object();
  if (!args.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat("method ", method, ": args must be an object"));
  }
  absl::MutexLock op(&op_mu_);
  if (method == "update_config") return UpdateConfig(args, timeout);
  if (method == "stage_weights") {
    LOOM_ASSIGN_OR_RETURN(const bool release, BoolArg(args, "release_previous"));
    return Stage(args.value("source", json()), release && previous_version() != 0, timeout);
  }
  if (method == "rollback_weights") {
    LOOM_ASSIGN_OR_RETURN(SwitchPolicy policy, ParseSwitchPolicy(args));
    return Rollback(policy, timeout);
  }
  if (method == "release_previous_weights") return ReleasePrevious(timeout);
  if (method == "sleep") return Sleep(args, timeout);
  if (method == "wake_up") {
    LOOM_ASSIGN_OR_RETURN(const bool reload, BoolArg(args, "reload"));
    return WakeUp(reload, timeout);
  }
  if (method == "reload_weights" && sleep_level() == 2) {
    return WakeUp(/*reload=*/true, timeout);  // the weights are gone: a reload is the wake
  }
  if (method == "reload_weights") return Reload(args, timeout);
  if (method == "commit_weights") {
    LOOM_ASSIGN_OR_RETURN(SwitchPolicy policy, ParseSwitchPolicy(args));
    const uint64_t staged = staged_version();
    if (staged == 0) return absl::FailedPreconditionError("commit_weights: nothing is staged");
    const int64_t asked = NumberOr(args, "version", static_cast<int64_t>(staged));
    if (asked != static_cast<int64_t>(staged)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "commit_weights: version ", asked, " is not staged (staged: ", staged, ")"));
    }
    LOOM_ASSIGN_OR_RETURN(const bool keep, BoolArg(args, "keep_previous"));
    return Commit(staged, policy, keep, timeout);
  }
  if (method == "abort_staged_weights") {
    LOOM_ASSIGN_OR_RETURN(std::vector<RankResult> results, hooks_.call(method, "{}", timeout));
    absl::MutexLock lock(&mu_);
    staged_version_ = 0;
    staged_model_ = nullptr;
    return results;
  }
  if (method == "update_weights_from_distributed") {
    const uint64_t version = NextVersion();
    args["version"] = version;
    LOOM_ASSIGN_OR_RETURN(std::vector<RankResult> results,
                          hooks_.call(method, args.dump(), timeout));
    absl::MutexLock lock(&mu_);
    staged_version_ = version;
    staged_model_ = serving_model_;  // a trainer's push changes the weights only
    staged_config_ = config_;
    return results;
  }
  // save_sharded_state, init/destroy_weight_update_group: ordered with the rest, sent as given.
  return hooks_.call(method, args.dump(), timeout);
}

absl::StatusOr<std::vector<RankResult>> WeightCoordinator::UpdateConfig(
    const json& patch, std::chrono::milliseconds timeout) {
  // Checked here first (cheap, and names the problem once), then on every rank without
  // applying, then applied everywhere: a patch one rank refuses changes no rank.
  LOOM_ASSIGN_OR_RETURN(EngineConfig next, ApplyConfigPatch(config(), patch.dump()));
  LOOM_RETURN_IF_ERROR(
      hooks_.call("update_config", json{{"patch", patch}, {"dry_run", true}}.dump(), timeout)
          .status());
  LOOM_ASSIGN_OR_RETURN(
      std::vector<RankResult> results,
      hooks_.call("update_config", json{{"patch", patch}, {"dry_run", false}}.dump(), timeout));
  absl::MutexLock lock(&mu_);
  config_ = next;
  return results;
}

absl::StatusOr<std::vector<RankResult>> WeightCoordinator::Stage(
    const json& source, bool release_previous, std::chrono::milliseconds timeout) {
  const uint64_t version = NextVersion();
  json args = {{"version", version}};
  // Each rank frees its kept set by loading the new one into its buffers (no fresh memory).
  if (release_previous) args["release_previous"] = true;
  EngineConfig next = config();
  if (!source.is_null()) {
    // Validate the source as a load-config patch before any rank starts loading.
    LOOM_ASSIGN_OR_RETURN(next, ApplyConfigPatch(next, json{{"load_config", source}}.dump()));
    args["source"] = source;
  }
  // The directory's own files too: a model the ranks cannot serve is refused before any loads.
  LOOM_ASSIGN_OR_RETURN(std::shared_ptr<const ServedModel> model, PrepareModel(next));
  int64_t restarts_before;
  {
    absl::MutexLock lock(&mu_);
    restarts_before = restarts_;
  }
  absl::StatusOr<std::vector<RankResult>> results =
      hooks_.call("stage_weights", args.dump(), timeout);
  absl::MutexLock lock(&mu_);
  if (restarts_ != restarts_before) {
    // The ranks that staged are gone (a failure restarted them): nothing is staged now.
    return absl::AbortedError("stage_weights: the ranks were restarted after a failure while "
                              "it ran; nothing is staged");
  }
  if (release_previous) {
    // Gone on every rank that got the call, whether its stage then succeeded or not.
    previous_version_ = 0;
    previous_model_ = nullptr;
  }
  // A failed stage leaves nothing staged on any rank (they agree before returning).
  staged_version_ = results.ok() ? version : 0;
  staged_config_ = results.ok() ? next : config_;
  staged_model_ = results.ok() ? model : nullptr;
  return results;
}

absl::StatusOr<std::vector<RankResult>> WeightCoordinator::Commit(
    uint64_t version, SwitchPolicy policy, bool keep_previous, std::chrono::milliseconds timeout) {
  absl::StatusOr<std::vector<RankResult>> results;
  std::shared_ptr<const ServedModel> model;
  {
    absl::MutexLock lock(&mu_);
    model = staged_model_ != nullptr ? staged_model_ : serving_model_;
  }
  absl::Status ran = hooks_.between_steps([&]() -> absl::Status {
    results = hooks_.call("commit_weights",
                          json{{"version", version}, {"keep_previous", keep_previous}}.dump(),
                          timeout);
    if (!results.ok()) {
      // Some ranks may have switched and others not: no step can run consistently any more.
      hooks_.broken(absl::UnavailableError(
          absl::StrCat("weight commit failed part-way: ", results.status().message())));
      return results.status();
    }
    hooks_.switched(version, policy, model);
    return absl::OkStatus();
  });
  LOOM_RETURN_IF_ERROR(ran);
  absl::MutexLock lock(&mu_);
  if (keep_previous) {
    previous_version_ = serving_version_;
    previous_model_ = serving_model_;
    previous_load_ = config_.load;
  }
  serving_version_ = version;
  staged_version_ = 0;
  config_.load = staged_config_.load;
  serving_model_ = std::move(model);
  staged_model_ = nullptr;
  return results;
}

absl::StatusOr<std::vector<RankResult>> WeightCoordinator::Rollback(
    SwitchPolicy policy, std::chrono::milliseconds timeout) {
  std::shared_ptr<const ServedModel> model;
  {
    absl::MutexLock lock(&mu_);
    if (previous_version_ == 0) {
      return absl::FailedPreconditionError(
          "rollback_weights: no previous weights are kept (commit_weights with "
          "\"keep_previous\": true keeps the set it replaces)");
    }
    model = previous_model_;
  }
  // A new version number: versions only increase, and every step names the one it runs.
  const uint64_t version = NextVersion();
  absl::StatusOr<std::vector<RankResult>> results;
  LOOM_RETURN_IF_ERROR(hooks_.between_steps([&]() -> absl::Status {
    results = hooks_.call("rollback_weights", json{{"version", version}}.dump(), timeout);
    if (!results.ok()) {
      // The ranks check before switching, so a refusal leaves them all as they were; any
      // other failure may have switched some ranks and not others.
      if (results.status().code() != absl::StatusCode::kFailedPrecondition) {
        hooks_.broken(absl::UnavailableError(
            absl::StrCat("weight rollback failed part-way: ", results.status().message())));
      }
      return results.status();
    }
    hooks_.switched(version, policy, model);
    return absl::OkStatus();
  }));
  absl::MutexLock lock(&mu_);
  std::swap(serving_model_, previous_model_);
  std::swap(config_.load, previous_load_);
  previous_version_ = serving_version_;  // the set rolled back from is kept in turn
  serving_version_ = version;
  for (RankResult& r : *results) r.result["restored_from"] = previous_version_;
  return results;
}

absl::StatusOr<std::vector<RankResult>> WeightCoordinator::ReleasePrevious(
    std::chrono::milliseconds timeout) {
  LOOM_ASSIGN_OR_RETURN(std::vector<RankResult> results,
                        hooks_.call("release_previous_weights", "{}", timeout));
  absl::MutexLock lock(&mu_);
  previous_version_ = 0;
  previous_model_ = nullptr;
  return results;
}

absl::StatusOr<std::vector<RankResult>> WeightCoordinator::Sleep(
    const json& args, std::chrono::milliseconds timeout) {
  LOOM_ASSIGN_OR_RETURN(SwitchPolicy policy, ParseSwitchPolicy(args));
  const int64_t level = NumberOr(args, "level", 0);
  if (level != 1 && level != 2) {
    return absl::InvalidArgumentError("sleep: \"level\" must be 1 or 2");
  }
  if (sleep_level() != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("sleep: already asleep (level ", sleep_level(), ")"));
  }
  absl::StatusOr<std::vector<RankResult>> results;
  LOOM_RETURN_IF_ERROR(hooks_.between_steps([&]() -> absl::Status {
    results = hooks_.call("sleep", json{{"level", level}}.dump(), timeout);
    if (!results.ok()) {
      // A refusal (FailedPrecondition: a staged or kept set) is every rank's, before any change;
      // anything else may have put some ranks to sleep and not others.
      if (results.status().code() != absl::StatusCode::kFailedPrecondition) {
        hooks_.broken(absl::UnavailableError(
            absl::StrCat("sleep failed part-way: ", results.status().message())));
      }
      return results.status();
    }
    hooks_.slept(static_cast<int>(level), policy);
    return absl::OkStatus();
  }));
  absl::MutexLock lock(&mu_);
  sleep_level_ = static_cast<int>(level);
  return results;
}

absl::StatusOr<std::vector<RankResult>> WeightCoordinator::WakeUp(
    bool reload, std::chrono::milliseconds timeout) {
  const int level = sleep_level();
  if (level == 0) return absl::FailedPreconditionError("wake_up: not asleep");
  if (level == 2 && !reload) {
    return absl::FailedPreconditionError(
        "wake_up: a level-2 sleep dropped the weights; wake_up {\"reload\": true} (or "
        "reload_weights) loads them again");
  }
  if (level == 1 && reload) {
    return absl::InvalidArgumentError("wake_up: a level-1 sleep kept the weights; no reload");
  }
  std::shared_ptr<const ServedModel> model;
  uint64_t version = 0;
  if (level == 2) {
    LOOM_ASSIGN_OR_RETURN(model, PrepareModel(config()));
    version = NextVersion();
  }
  absl::StatusOr<std::vector<RankResult>> results;
  LOOM_RETURN_IF_ERROR(hooks_.between_steps([&]() -> absl::Status {
    json args = json::object();
    if (version != 0) args["version"] = version;
    results = hooks_.call("wake_up", args.dump(), timeout);
    if (!results.ok()) return results.status();  // the ranks that failed stay asleep
    if (version != 0) hooks_.switched(version, SwitchPolicy::kRecompute, model);
    hooks_.slept(0, SwitchPolicy::kRecompute);
    return absl::OkStatus();
  }));
  absl::MutexLock lock(&mu_);
  sleep_level_ = 0;
  if (version != 0) {
    serving_version_ = version;
    serving_model_ = std::move(model);
  }
  return results;
}

int WeightCoordinator::sleep_level() const {
  absl::MutexLock lock(&mu_);
  return sleep_level_;
}

uint64_t WeightCoordinator::previous_version() const {
  absl::MutexLock lock(&mu_);
  return previous_version_;
}

absl::StatusOr<std::vector<RankResult>> WeightCoordinator::Reload(
    const json& args, std::chrono::milliseconds timeout) {
  LOOM_ASSIGN_OR_RETURN(SwitchPolicy policy, ParseSwitchPolicy(args));
  std::string mode = args.value("mode", std::string("auto"));
  if (mode != "auto" && mode != "staged" && mode != "in_place") {
    return absl::InvalidArgumentError(absl::StrCat(
        "\"mode\": expected \"auto\", \"staged\" or \"in_place\", got \"", mode, "\""));
  }
  if (mode == "auto" && previous_version() != 0) {
    mode = "in_place";  // the kept previous set holds the memory a staged one would need
  } else if (mode == "auto") {
    // Staging holds a second copy of every rank's weights for the length of the load.
    LOOM_ASSIGN_OR_RETURN(std::vector<RankResult> described, hooks_.call("describe", "{}", timeout));
    mode = "staged";
    for (const RankResult& r : described) {
      const int64_t available = NumberOr(r.result, "memory_available_bytes", -1);
      const int64_t needed = NumberOr(r.result, "weight_bytes", 0);
      if (available >= 0 && available < needed + needed / 10) mode = "in_place";
    }
  }
  std::vector<RankResult> results;
  if (mode == "staged") {
    LOOM_ASSIGN_OR_RETURN(results, Stage(json(), /*release_previous=*/false, timeout));
    LOOM_ASSIGN_OR_RETURN(std::vector<RankResult> committed,
                          Commit(staged_version(), policy, /*keep_previous=*/false, timeout));
    for (size_t i = 0; i < results.size() && i < committed.size(); ++i) {
      results[i].result["commit"] = committed[i].result;
    }
  } else {
    LOOM_ASSIGN_OR_RETURN(std::shared_ptr<const ServedModel> model, PrepareModel(config()));
    const uint64_t version = NextVersion();
    absl::StatusOr<std::vector<RankResult>> reloaded;
    LOOM_RETURN_IF_ERROR(hooks_.between_steps([&]() -> absl::Status {
      reloaded = hooks_.call("reload_weights", json{{"version", version}}.dump(), timeout);
      if (!reloaded.ok()) {
        // Ranks refuse a bad source before writing anything, and the old weights still
        // serve; a rank whose write failed part-way reports itself failed.
        absl::StatusOr<std::vector<RankResult>> described =
            hooks_.call("describe", "{}", timeout);
        bool failed = !described.ok();
        if (described.ok()) {
          for (const RankResult& r : *described) {
            failed = failed || r.result.value("weights", json::object()).value("state", "") ==
                                   "failed";
          }
        }
        if (failed) hooks_.broken(absl::UnavailableError(std::string(reloaded.status().message())));
        return reloaded.status();
      }
      hooks_.switched(version, policy, model);
      return absl::OkStatus();
    }));
    results = std::move(*reloaded);
    absl::MutexLock lock(&mu_);
    serving_version_ = version;
    serving_model_ = std::move(model);
  }
  for (RankResult& r : results) r.result["mode"] = mode;
  return results;
}

}  // namespace loom
