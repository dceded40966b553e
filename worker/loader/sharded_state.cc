// Writing sharded state: each rank saves exactly the parts it holds, under their HF names, with
// each tensor's region (full shape and the range it covers) recorded in the file's metadata, so
// the directory loads back at the same TP size by reading only one's own files, and at any other
// TP size by reassembling regions (sharded_state_source.cc). Also the copy of a model directory's
// non-weight files that makes the output a complete model directory.
#include <algorithm>
#include <filesystem>
#include <map>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/safetensors.h"
#include "common/status.h"
#include "nlohmann/json.hpp"
#include "worker/loader/region_reader.h"
#include "worker/loader/weight_source.h"

namespace loom {
namespace {

namespace fs = std::filesystem;

// Matches model-rank-{rank}-part-{digits}.safetensors.
bool IsPartOfRank(const std::string& filename, int rank) {
  const std::string prefix = absl::StrCat("model-rank-", rank, "-part-");
  const std::string suffix = ".safetensors";
  if (!absl::StartsWith(filename, prefix) || !absl::EndsWith(filename, suffix)) return false;
  const std::string part =
      filename.substr(prefix.size(), filename.size() - prefix.size() - suffix.size());
  uint32_t unused;
  return !part.empty() && part.find_first_not_of("0123456789") == std::string::npos &&
         absl::SimpleAtoi(part, &unused);
}

absl::Status CheckPart(const ParameterInfo& p, const Tensor& t) {
  LOOM_RETURN_IF_ERROR(ValidateRegion(p));
  if (!t.defined() || !IsFloat(t.dtype())) {
    return absl::InvalidArgumentError(absl::StrCat(p.name, ": expected a float tensor"));
  }
  if (t.shape() != p.local_shape()) {
    return absl::InvalidArgumentError(absl::StrCat(p.name, ": part has shape ",
                                                   ShapeString(t.shape()), ", region needs ",
                                                   ShapeString(p.local_shape())));
  }
  return absl::OkStatus();
}

nlohmann::json RegionJson(const ParameterInfo& p) {
  const bool split = p.split_dim >= 0;
  return {{"shape", p.shape},
          {"split_dim", split ? p.split_dim : -1},
          {"start", split ? p.start : 0},
          {"length", split ? p.length : 0}};
}

}  // namespace

absl::StatusOr<SaveReport> SaveShardedState(
    const std::string& out_dir, const std::vector<std::pair<ParameterInfo, Tensor>>& parts,
    const ShardedStateInfo& info) {
  if (info.tp_size < 1 || info.rank < 0 || info.rank >= info.tp_size || info.max_file_size < 0) {
    return absl::InvalidArgumentError(absl::StrCat(out_dir, ": cannot save rank ", info.rank,
                                                   " of tp size ", info.tp_size,
                                                   " with max file size ", info.max_file_size));
  }
  std::set<std::string> names;
  for (const auto& [p, t] : parts) {
    absl::Status s = CheckPart(p, t);
    if (!s.ok()) return absl::Status(s.code(), absl::StrCat(out_dir, ": ", s.message()));
    if (!names.insert(p.name).second) {
      return absl::InvalidArgumentError(absl::StrCat(out_dir, ": tensor ", p.name, " given twice"));
    }
  }

  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (ec) return absl::InternalError(absl::StrCat(out_dir, ": cannot create: ", ec.message()));
  // A previous save of this rank may have had more parts; its leftovers would be loaded too.
  std::vector<fs::path> stale;
  for (fs::directory_iterator it(out_dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (IsPartOfRank(it->path().filename().string(), info.rank)) stale.push_back(it->path());
  }
  if (ec) return absl::InternalError(absl::StrCat(out_dir, ": cannot list: ", ec.message()));
  for (const fs::path& path : stale) {
    if (!fs::remove(path, ec) && ec) {
      return absl::InternalError(
          absl::StrCat(path.string(), ": cannot remove stale part: ", ec.message()));
    }
  }

  // Files in the order given: a new file starts when the next tensor would pass the limit.
  std::vector<std::vector<size_t>> files;
  int64_t file_bytes = 0;
  for (size_t i = 0; i < parts.size(); ++i) {
    const int64_t n = static_cast<int64_t>(parts[i].second.nbytes());
    if (files.empty() ||
        (info.max_file_size > 0 && file_bytes > 0 && file_bytes + n > info.max_file_size)) {
      files.emplace_back();
      file_bytes = 0;
    }
    files.back().push_back(i);
    file_bytes += n;
  }
  if (files.empty()) files.emplace_back();  // an empty rank still records its metadata

  SaveReport report;
  for (size_t f = 0; f < files.size(); ++f) {
    std::vector<std::pair<std::string, Tensor>> tensors;
    nlohmann::json regions = nlohmann::json::object();
    for (size_t i : files[f]) {
      tensors.emplace_back(parts[i].first.name, parts[i].second);
      regions[parts[i].first.name] = RegionJson(parts[i].first);
    }
    const std::map<std::string, std::string> metadata = {
        {"format", "pt"},
        {"loom.format", "sharded_state"},
        {"loom.tp_size", absl::StrCat(info.tp_size)},
        {"loom.rank", absl::StrCat(info.rank)},
        {"loom.num_parts", absl::StrCat(files.size())},
        {"loom.source", info.source},
        {"loom.weight_version", absl::StrCat(info.weight_version)},
        {"loom.regions", regions.dump()}};
    const std::string path =
        (fs::path(out_dir) / absl::StrCat("model-rank-", info.rank, "-part-", f, ".safetensors"))
            .string();
    LOOM_RETURN_IF_ERROR(WriteSafetensors(path, tensors, metadata));
    report.files.push_back(path);
    report.bytes_written += static_cast<int64_t>(fs::file_size(path, ec));
  }
  std::sort(report.files.begin(), report.files.end());
  return report;
}

absl::Status CopyNonWeightFiles(const std::string& model_dir, const std::string& out_dir) {
  std::error_code ec;
  if (!fs::is_directory(model_dir, ec)) {
    return absl::NotFoundError(absl::StrCat(model_dir, ": not a directory"));
  }
  fs::create_directories(out_dir, ec);
  if (ec) return absl::InternalError(absl::StrCat(out_dir, ": cannot create: ", ec.message()));
  if (fs::equivalent(model_dir, out_dir, ec)) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot copy ", model_dir, " onto itself (", out_dir, ")"));
  }
  // Symlinks to regular files count (an HF cache snapshot is all symlinks into its blobs).
  for (fs::directory_iterator it(model_dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    std::error_code type_ec;
    if (!it->is_regular_file(type_ec) || absl::EndsWith(name, ".safetensors") ||
        name == "model.safetensors.index.json") {
      continue;
    }
    std::error_code copy_ec;
    fs::copy_file(it->path(), fs::path(out_dir) / name, fs::copy_options::overwrite_existing,
                  copy_ec);
    if (copy_ec) {
      return absl::InternalError(
          absl::StrCat(it->path().string(), ": cannot copy to ", out_dir, ": ", copy_ec.message()));
    }
  }
  if (ec) return absl::InternalError(absl::StrCat(model_dir, ": cannot list: ", ec.message()));
  return absl::OkStatus();
}

}  // namespace loom
