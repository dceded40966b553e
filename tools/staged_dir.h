// StagedDir: a model directory that appears whole or not at all.
//
// The tools that write model directories build them in a hidden sibling directory and rename it
// into place only when every file is written, so a failed run (bad weights file, full disk, a
// crash) never leaves a half-written model where a reader could pick it up.
#ifndef LOOM_TOOLS_STAGED_DIR_H_
#define LOOM_TOOLS_STAGED_DIR_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace loom {

class StagedDir {
 public:
  // Checks that `output` can be (re)placed and creates the staging directory beside it.
  // `output` may be absent or an empty directory; a non-empty one is replaced only when
  // `overwrite` is set. Nothing at `output` is touched until Commit.
  static absl::StatusOr<StagedDir> Create(const std::string& output, bool overwrite);

  StagedDir(StagedDir&& other) noexcept;
  StagedDir& operator=(StagedDir&&) = delete;
  StagedDir(const StagedDir&) = delete;
  // Removes the staging directory unless Commit succeeded.
  ~StagedDir();

  // Where the files go until Commit.
  const std::string& path() const { return staging_; }
  // A file inside the staging directory.
  std::string File(const std::string& name) const { return staging_ + "/" + name; }

  // Moves the staging directory to `output`, replacing what was there.
  absl::Status Commit();

 private:
  StagedDir(std::string output, std::string staging)
      : output_(std::move(output)), staging_(std::move(staging)) {}

  std::string output_;
  std::string staging_;  // empty once committed or moved from
};

// Writes `text` to `path` (truncating), with an error naming the file.
absl::Status WriteTextFile(const std::string& path, const std::string& text);

}  // namespace loom

#endif  // LOOM_TOOLS_STAGED_DIR_H_
