#include "controller/path_roots.h"

#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace loom {
namespace {

namespace fs = std::filesystem;

// Whether `path` is `root` or below it, component by component (so /data2 is not under /data).
bool Within(const fs::path& path, const fs::path& root) {
  auto p = path.begin();
  for (auto r = root.begin(); r != root.end(); ++r, ++p) {
    if (r->empty()) continue;  // a root's trailing separator
    if (p == path.end() || *p != *r) return false;
  }
  return true;
}

}  // namespace

absl::StatusOr<PathRoots> PathRoots::Make(const std::vector<std::string>& roots) {
  PathRoots made;
  for (const std::string& root : roots) {
    if (root.empty()) continue;
    std::error_code ec;
    const fs::path resolved = fs::canonical(root, ec);
    if (ec || !fs::is_directory(resolved, ec)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--allowed-path-roots: ", root, " is not an existing directory"));
    }
    made.roots_.push_back(resolved.string());
  }
  return made;
}

absl::Status PathRoots::Check(const std::string& path) const {
  if (!confined()) return absl::OkStatus();
  const fs::path p(path);
  if (path.empty() || !p.is_absolute()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "path \"", path, "\" must be absolute (this server confines paths to its roots)"));
  }
  for (const fs::path& part : p) {
    if (part == "..") {
      return absl::InvalidArgumentError(
          absl::StrCat("path \"", path, "\" has a \"..\" component, which is refused"));
    }
  }
  std::error_code ec;
  // Follows every symlink of the part that exists; the rest (a directory a save will create)
  // is appended as written.
  const fs::path resolved = fs::weakly_canonical(p, ec);
  if (ec) {
    return absl::InvalidArgumentError(
        absl::StrCat("path \"", path, "\" cannot be resolved: ", ec.message()));
  }
  for (const std::string& root : roots_) {
    if (Within(resolved, root)) return absl::OkStatus();
  }
  return absl::PermissionDeniedError(
      absl::StrCat("path \"", path, "\"",
                   resolved.string() == path ? "" : absl::StrCat(" (", resolved.string(), ")"),
                   " is outside the allowed roots (", absl::StrJoin(roots_, ", "), ")"));
}

absl::Status PathRoots::CheckArgs(const std::string& method,
                                  const std::vector<std::string>& pointers,
                                  const nlohmann::json& args) const {
  if (!confined()) return absl::OkStatus();
  for (const std::string& pointer : pointers) {
    nlohmann::json::json_pointer at;
    try {
      at = nlohmann::json::json_pointer(pointer);
    } catch (const nlohmann::json::exception&) {
      return absl::InternalError(absl::StrCat(method, ": bad path pointer ", pointer));
    }
    // contains() throws on a pointer through a non-object (e.g. "patch" given as a string).
    bool present = false;
    try {
      present = args.contains(at) && !args.at(at).is_null();
    } catch (const nlohmann::json::exception&) {
      present = false;
    }
    if (!present) continue;
    const nlohmann::json& value = args.at(at);
    if (!value.is_string()) {
      return absl::InvalidArgumentError(
          absl::StrCat(method, ": ", pointer.substr(1), " must be a string path"));
    }
    absl::Status s = Check(value.get<std::string>());
    if (!s.ok()) return absl::Status(s.code(), absl::StrCat(method, ": ", s.message()));
  }
  return absl::OkStatus();
}

}  // namespace loom
