#include "tools/staged_dir.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"

namespace loom {
namespace fs = std::filesystem;

namespace {

// A sibling of `output` that no other run picks: ".<name>.<tag>-<pid>-<random>".
std::string SiblingName(const fs::path& output, const std::string& tag) {
  std::random_device rd;
  fs::path parent = output.parent_path();
  std::string name =
      absl::StrCat(".", output.filename().string(), ".", tag, "-", getpid(), "-", rd() % 1000000);
  return (parent.empty() ? fs::path(name) : parent / name).string();
}

}  // namespace

absl::StatusOr<StagedDir> StagedDir::Create(const std::string& output, bool overwrite) {
  if (output.empty()) return absl::InvalidArgumentError("the output directory is empty");
  fs::path out = fs::path(output).lexically_normal();
  if (out.filename().empty()) out = out.parent_path();  // "dir/" -> "dir"
  std::error_code ec;
  fs::file_status st = fs::status(out, ec);
  if (fs::exists(st)) {
    if (!fs::is_directory(st)) {
      return absl::AlreadyExistsError(
          absl::StrCat("output ", out.string(), " exists and is not a directory"));
    }
    if (!overwrite && !fs::is_empty(out, ec)) {
      return absl::AlreadyExistsError(absl::StrCat(
          "output directory ", out.string(), " is not empty (pass --overwrite to replace it)"));
    }
  }
  fs::path parent = out.parent_path();
  if (!parent.empty() && !fs::is_directory(parent, ec)) {
    fs::create_directories(parent, ec);
    if (ec) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot create ", parent.string(), ": ", ec.message()));
    }
  }
  std::string staging = SiblingName(out, "tmp");
  if (!fs::create_directory(staging, ec) || ec) {
    return absl::FailedPreconditionError(absl::StrCat("cannot create staging directory ", staging,
                                                      ": ", ec ? ec.message() : "exists"));
  }
  return StagedDir(out.string(), std::move(staging));
}

StagedDir::StagedDir(StagedDir&& other) noexcept
    : output_(std::move(other.output_)), staging_(std::exchange(other.staging_, "")) {}

StagedDir::~StagedDir() {
  if (staging_.empty()) return;
  std::error_code ec;
  fs::remove_all(staging_, ec);
}

absl::Status StagedDir::Commit() {
  if (staging_.empty()) return absl::FailedPreconditionError("staged directory already committed");
  std::error_code ec;
  std::string old;
  if (fs::exists(output_, ec)) {
    // rename(2) cannot replace a non-empty directory: move the old one aside first.
    old = SiblingName(output_, "old");
    fs::rename(output_, old, ec);
    if (ec) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot move ", output_, " aside: ", ec.message()));
    }
  }
  fs::rename(staging_, output_, ec);
  if (ec) {
    std::error_code ignored;
    if (!old.empty()) fs::rename(old, output_, ignored);
    return absl::FailedPreconditionError(
        absl::StrCat("cannot rename ", staging_, " to ", output_, ": ", ec.message()));
  }
  staging_.clear();
  if (!old.empty()) fs::remove_all(old, ec);
  return absl::OkStatus();
}

absl::Status WriteTextFile(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(text.data(), static_cast<std::streamsize>(text.size()));
  f.close();
  if (!f) return absl::DataLossError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

}  // namespace loom
