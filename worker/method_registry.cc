#include "worker/method_registry.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"

namespace loom {

absl::Status MethodRegistry::Register(const std::string& name, MethodHandler handler,
                                     MethodSpec spec) {
  if (name.empty() || !handler) {
    return absl::InvalidArgumentError("a method needs a name and a handler");
  }
  if (!handlers_.emplace(name, Entry{std::move(handler), std::move(spec)}).second) {
    return absl::AlreadyExistsError(absl::StrCat("method ", name, " is already registered"));
  }
  return absl::OkStatus();
}

absl::StatusOr<nlohmann::json> MethodRegistry::Call(const std::string& name,
                                                    const nlohmann::json& args) const {
  auto it = handlers_.find(name);
  if (it == handlers_.end()) {
    return absl::NotFoundError(absl::StrCat(
        "unknown method \"", name, "\"; registered methods: ", absl::StrJoin(Names(), ", ")));
  }
  return it->second.handler(args);
}

const MethodSpec* MethodRegistry::Spec(const std::string& name) const {
  auto it = handlers_.find(name);
  return it == handlers_.end() ? nullptr : &it->second.spec;
}

std::vector<std::string> MethodRegistry::Names() const {
  std::vector<std::string> names;
  names.reserve(handlers_.size());
  for (const auto& [name, handler] : handlers_) names.push_back(name);
  return names;
}

nlohmann::json MethodRegistry::Specs() const {
  nlohmann::json specs = nlohmann::json::object();
  for (const auto& [name, entry] : handlers_) {
    specs[name] = {{"admin", entry.spec.admin}, {"path_args", entry.spec.path_args}};
  }
  return specs;
}

absl::Status RegisterTestMethods(MethodRegistry& registry, int rank,
                                 const absl::Notification* stopping) {
  absl::Status s = registry.Register(
      "stall", [rank, stopping](const nlohmann::json& args) -> absl::StatusOr<nlohmann::json> {
        constexpr double kMaxSeconds = 600;
        if (!args.is_object() || !args.contains("seconds") || !args["seconds"].is_number()) {
          return absl::InvalidArgumentError("stall: args must be {\"seconds\": number}");
        }
        if (args.contains("rank") && !args["rank"].is_number_integer()) {
          return absl::InvalidArgumentError("stall: \"rank\" must be an integer");
        }
        if (args.contains("rank") && args["rank"].get<int64_t>() != rank) {
          return nlohmann::json{{"slept_seconds", 0}};
        }
        const double seconds = args["seconds"].get<double>();
        if (!(seconds >= 0 && seconds <= kMaxSeconds)) {
          return absl::InvalidArgumentError(
              absl::StrCat("stall: seconds must be in [0, ", kMaxSeconds, "]"));
        }
        const absl::Duration d = absl::Seconds(seconds);
        if (stopping != nullptr) {
          stopping->WaitForNotificationWithTimeout(d);
        } else {
          absl::SleepFor(d);
        }
        return nlohmann::json{{"slept_seconds", seconds}};
      });
  if (!s.ok()) return s;
  return registry.Register(
      "fail_on_rank", [rank](const nlohmann::json& args) -> absl::StatusOr<nlohmann::json> {
        if (!args.is_object() || !args.contains("rank") || !args["rank"].is_number_integer()) {
          return absl::InvalidArgumentError("fail_on_rank: args must be {\"rank\": integer}");
        }
        if (args["rank"].get<int64_t>() == rank) {
          return absl::InternalError(
              absl::StrCat("fail_on_rank: failing on rank ", rank, " as asked"));
        }
        return nlohmann::json::object();
      });
}

}  // namespace loom
