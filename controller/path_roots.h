// The directories the collective methods may read from or write to (`loom serve
// --allowed-path-roots`): a model directory for update_config or stage_weights, the target of
// save_sharded_state. A path is allowed when it is absolute, has no ".." component, and — with
// every symlink of its existing part followed — lies in one of the roots. With no roots nothing
// is confined (the default; docs/security.md).
//
// The check runs on the controller before a call reaches any rank, so a refused call changes
// nothing. It cannot close the race with a symlink made between the check and the rank's open;
// roots should be directories only the server's user (and trusted writers) can change.
#ifndef LOOM_CONTROLLER_PATH_ROOTS_H_
#define LOOM_CONTROLLER_PATH_ROOTS_H_

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace loom {

class PathRoots {
 public:
  PathRoots() = default;  // nothing confined

  // Each root must be an existing directory; it is kept resolved (symlinks followed).
  // InvalidArgument naming the root otherwise.
  static absl::StatusOr<PathRoots> Make(const std::vector<std::string>& roots);

  bool confined() const { return !roots_.empty(); }
  const std::vector<std::string>& roots() const { return roots_; }

  // OK when `path` is allowed; InvalidArgument for a relative path or one with "..";
  // PermissionDenied naming the resolved path and the roots when it lies outside them.
  absl::Status Check(const std::string& path) const;

  // Checks the string at each JSON pointer of `pointers` in `args` (absent ones are skipped; a
  // present one that is not a string is InvalidArgument), naming `method` in the error.
  absl::Status CheckArgs(const std::string& method, const std::vector<std::string>& pointers,
                         const nlohmann::json& args) const;

 private:
  std::vector<std::string> roots_;
};

}  // namespace loom

#endif  // LOOM_CONTROLLER_PATH_ROOTS_H_
