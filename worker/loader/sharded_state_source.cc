// The `sharded_state` weight source: a directory written by SaveShardedState. At the TP size it
// was saved at, a rank opens only its own files and reads its own parts. At any other TP size
// every file's header is read, and each region this rank needs is assembled from the saved pieces
// that overlap it: a cover of the region by pieces cut along the same dimension (or held whole),
// each contributing only the bytes it alone supplies, so no byte is read twice.
#include <algorithm>
#include <filesystem>
#include <map>

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
using json = nlohmann::json;

// Parses "model-rank-{rank}-part-{part}.safetensors".
bool ParsePartName(const std::string& name, int* rank, int* part) {
  const std::string prefix = "model-rank-", middle = "-part-", suffix = ".safetensors";
  if (!absl::StartsWith(name, prefix) || !absl::EndsWith(name, suffix)) return false;
  const std::string core = name.substr(prefix.size(), name.size() - prefix.size() - suffix.size());
  const size_t m = core.find(middle);
  if (m == std::string::npos) return false;
  const std::string r = core.substr(0, m), p = core.substr(m + middle.size());
  auto digits = [](const std::string& s) {
    return !s.empty() && s.find_first_not_of("0123456789") == std::string::npos;
  };
  return digits(r) && digits(p) && absl::SimpleAtoi(r, rank) && absl::SimpleAtoi(p, part);
}

// One saved file: its header, what its metadata says, and (once read from) a descriptor.
struct SavedFile {
  std::unique_ptr<SafetensorsFile> header;
  int rank = 0;
  int tp_size = 0;
  int num_parts = 0;
  std::string weight_version;
  std::map<std::string, ParameterInfo> regions;  // tensor name -> region it holds
  std::unique_ptr<PositionalFile> data;
};

absl::Status Bad(const std::string& path, const std::string& what) {
  return absl::DataLossError(absl::StrCat(path, ": ", what));
}

absl::StatusOr<int> MetadataInt(const SafetensorsFile& f, const std::string& key) {
  auto it = f.metadata().find(key);
  int v = 0;
  if (it == f.metadata().end() || !absl::SimpleAtoi(it->second, &v) || v < 0) {
    return Bad(f.path(), absl::StrCat("metadata \"", key, "\" is missing or not a count"));
  }
  return v;
}

absl::StatusOr<ParameterInfo> ParseRegion(const std::string& path, const std::string& name,
                                          const json& j) {
  ParameterInfo p;
  p.name = name;
  const std::string what = absl::StrCat("loom.regions entry for ", name, " is malformed");
  if (!j.is_object() || !j.contains("shape") || !j["shape"].is_array()) return Bad(path, what);
  for (const json& d : j["shape"]) {
    if (!d.is_number_integer() || d.get<int64_t>() < 0) return Bad(path, what);
    p.shape.push_back(d.get<int64_t>());
  }
  for (const char* key : {"split_dim", "start", "length"}) {
    if (!j.contains(key) || !j[key].is_number_integer()) return Bad(path, what);
  }
  const int64_t split_dim = j["split_dim"].get<int64_t>();
  if (split_dim < -1 || split_dim >= static_cast<int64_t>(p.shape.size())) return Bad(path, what);
  p.split_dim = static_cast<int>(split_dim);
  p.start = j["start"].get<int64_t>();
  p.length = j["length"].get<int64_t>();
  absl::Status s = ValidateRegion(p);
  if (!s.ok()) return Bad(path, std::string(s.message()));
  return p;
}

absl::StatusOr<SavedFile> OpenSaved(const std::string& path, int rank_from_name) {
  SavedFile f;
  LOOM_ASSIGN_OR_RETURN(f.header, SafetensorsFile::Open(path));
  const auto& meta = f.header->metadata();
  auto format = meta.find("loom.format");
  if (format == meta.end() || format->second != "sharded_state") {
    return Bad(path,
               "not a sharded-state file (metadata \"loom.format\" is not \"sharded_state\")");
  }
  LOOM_ASSIGN_OR_RETURN(f.tp_size, MetadataInt(*f.header, "loom.tp_size"));
  LOOM_ASSIGN_OR_RETURN(f.rank, MetadataInt(*f.header, "loom.rank"));
  LOOM_ASSIGN_OR_RETURN(f.num_parts, MetadataInt(*f.header, "loom.num_parts"));
  if (f.tp_size < 1 || f.rank != rank_from_name || f.rank >= f.tp_size) {
    return Bad(path, absl::StrCat("metadata says rank ", f.rank, " of tp size ", f.tp_size,
                                  ", the file name says rank ", rank_from_name));
  }
  auto version = meta.find("loom.weight_version");
  if (version != meta.end()) f.weight_version = version->second;
  auto regions_it = meta.find("loom.regions");
  if (regions_it == meta.end()) return Bad(path, "metadata has no \"loom.regions\"");
  const json regions = json::parse(regions_it->second, nullptr, /*allow_exceptions=*/false);
  if (regions.is_discarded() || !regions.is_object()) {
    return Bad(path, "metadata \"loom.regions\" is not a JSON object");
  }
  for (auto it = regions.begin(); it != regions.end(); ++it) {
    LOOM_ASSIGN_OR_RETURN(ParameterInfo p, ParseRegion(path, it.key(), it.value()));
    const SafetensorsEntry* e = f.header->Find(it.key());
    if (e == nullptr) return Bad(path, absl::StrCat("loom.regions names absent tensor ", p.name));
    if (e->shape != p.local_shape() || !IsFloat(e->dtype)) {
      return Bad(path, absl::StrCat("tensor ", p.name, " is ", ShapeString(e->shape), " ",
                                    DTypeName(e->dtype), ", its region needs a float ",
                                    ShapeString(p.local_shape())));
    }
    f.regions[p.name] = p;
  }
  for (const SafetensorsEntry& e : f.header->entries()) {
    if (!f.regions.count(e.name)) {
      return Bad(path, absl::StrCat("tensor ", e.name, " has no region"));
    }
  }
  return f;
}

// One step of a region's cover: copy [lo, hi) along `dim` (everything when dim < 0, a scalar)
// from the saved `piece` in `file`.
struct Copy {
  SavedFile* file;
  const ParameterInfo* piece;
  int dim;
  int64_t lo, hi;
};

class ShardedStateSource : public WeightSource {
 public:
  ShardedStateSource(std::string dir, std::vector<SavedFile> files)
      : dir_(std::move(dir)), files_(std::move(files)) {
    for (SavedFile& f : files_) {
      for (const auto& [name, region] : f.regions) pieces_[name].push_back({&f, &region});
    }
  }

  absl::Status Check(const std::vector<ParameterInfo>& params, bool tied) override {
    for (const ParameterInfo& p : params) LOOM_RETURN_IF_ERROR(Plan(p).status());
    std::map<std::string, std::string> held;
    for (const auto& [name, pieces] : pieces_) held[name] = pieces[0].first->header->path();
    return CheckNoUnknownTensors(held, params, tied);
  }

  absl::StatusOr<Tensor> Read(const ParameterInfo& p) override {
    LOOM_ASSIGN_OR_RETURN(DType dtype, SavedDType(p));
    Tensor out = Tensor::Empty(dtype, p.local_shape());
    LOOM_RETURN_IF_ERROR(Assemble(p, out));
    return out;
  }

  // Straight into the model's buffer when it has the saved dtype (it does, unless the weight
  // dtype changed since the save).
  absl::Status ReadInto(const ParameterInfo& p, Tensor& dst) override {
    LOOM_ASSIGN_OR_RETURN(DType dtype, SavedDType(p));
    if (dtype != dst.dtype() || !dst.is_contiguous() || dst.shape() != p.local_shape()) {
      return WeightSource::ReadInto(p, dst);
    }
    return Assemble(p, dst);
  }

  int64_t bytes_read() const override { return bytes_read_; }

  std::vector<std::string> files_opened() const override {
    std::vector<std::string> paths;
    for (const SavedFile& f : files_) paths.push_back(f.header->path());
    std::sort(paths.begin(), paths.end());
    return paths;
  }

 private:
  using Piece = std::pair<SavedFile*, const ParameterInfo*>;

  absl::StatusOr<DType> SavedDType(const ParameterInfo& p) {
    auto it = pieces_.find(p.name);
    if (it == pieces_.end() || it->second.empty()) {
      return absl::NotFoundError(absl::StrCat("no saved piece holds ", p.name));
    }
    return it->second[0].first->header->Find(p.name)->dtype;
  }

  // Copies `p`'s region from the saved pieces into `out` (contiguous, the saved dtype).
  absl::Status Assemble(const ParameterInfo& p, const Tensor& out) {
    LOOM_ASSIGN_OR_RETURN(std::vector<Copy> plan, Plan(p));
    for (const Copy& c : plan) {
      SavedFile& f = *c.file;
      if (f.data == nullptr) {
        LOOM_ASSIGN_OR_RETURN(f.data, PositionalFile::Open(f.header->path()));
      }
      const SafetensorsEntry& e = *f.header->Find(p.name);
      const StoredTensor src{f.data.get(), p.name, f.header->data_offset() + e.begin, e.dtype,
                             e.shape};
      std::vector<int64_t> src_lo(p.shape.size(), 0), dst_lo(p.shape.size(), 0);
      std::vector<int64_t> count = p.local_shape();
      if (c.dim >= 0) {
        src_lo[c.dim] = c.lo - (c.piece->split_dim == c.dim ? c.piece->start : 0);
        dst_lo[c.dim] = c.lo - (p.split_dim == c.dim ? p.start : 0);
        count[c.dim] = c.hi - c.lo;
      }
      LOOM_ASSIGN_OR_RETURN(int64_t n, ReadBox(src, src_lo, count, out, dst_lo));
      bytes_read_ += n;
    }
    return absl::OkStatus();
  }

  // The pieces that supply `p`'s region, each for the range it covers first; an error naming the
  // tensor when they are missing, disagree with `p`'s full shape, or leave part of it uncovered.
  absl::StatusOr<std::vector<Copy>> Plan(const ParameterInfo& p) const {
    LOOM_RETURN_IF_ERROR(ValidateRegion(p));
    auto it = pieces_.find(p.name);
    if (it == pieces_.end()) {
      return absl::NotFoundError(
          absl::StrCat(dir_, ": tensor ", p.name, " is missing from the sharded state"));
    }
    const std::vector<Piece>& pieces = it->second;
    const DType dtype = pieces[0].first->header->Find(p.name)->dtype;
    for (const auto& [file, piece] : pieces) {
      const std::string& path = file->header->path();
      if (piece->shape != p.shape) {
        return absl::InvalidArgumentError(absl::StrCat(path, ": ", p.name, ": expected shape ",
                                                       ShapeString(p.shape), ", got ",
                                                       ShapeString(piece->shape)));
      }
      if (file->header->Find(p.name)->dtype != dtype) {
        return absl::InvalidArgumentError(absl::StrCat(
            path, ": ", p.name, ": saved in two dtypes (", DTypeName(dtype), " elsewhere)"));
      }
      if (p.shape.empty()) return std::vector<Copy>{{file, piece, -1, 0, 0}};  // a scalar
    }
    // The dimension to cover along: the region's own, or for a whole region any dimension the
    // pieces are cut along (dim 0 when they are all whole).
    std::vector<int> dims = {std::max(p.split_dim, 0)};
    if (p.split_dim < 0) {
      for (const auto& [file, piece] : pieces) dims.push_back(std::max(piece->split_dim, 0));
    }
    for (int d : dims) {
      const int64_t lo = p.split_dim == d ? p.start : 0;
      const int64_t hi = p.split_dim == d ? p.start + p.length : p.shape[d];
      std::vector<Copy> plan;
      int64_t cur = lo;
      while (cur < hi) {  // greedy interval cover: the piece that reaches furthest past `cur`
        Copy best{nullptr, nullptr, d, cur, cur};
        for (const auto& [file, piece] : pieces) {
          if (piece->split_dim >= 0 && piece->split_dim != d) continue;
          const int64_t a = piece->split_dim < 0 ? 0 : piece->start;
          const int64_t b = piece->split_dim < 0 ? p.shape[d] : piece->start + piece->length;
          if (a <= cur && b > best.hi) best = {file, piece, d, cur, b};
        }
        if (best.file == nullptr) break;
        best.hi = std::min(best.hi, hi);
        plan.push_back(best);
        cur = best.hi;
      }
      if (cur >= hi) return plan;
    }
    return absl::FailedPreconditionError(absl::StrCat(
        dir_, ": tensor ", p.name, ": the saved pieces do not cover this rank's region ",
        p.split_dim < 0
            ? std::string("(whole)")
            : absl::StrCat("[", p.start, ", ", p.start + p.length, ") along dim ", p.split_dim)));
  }

  std::string dir_;
  std::vector<SavedFile> files_;
  std::map<std::string, std::vector<Piece>> pieces_;
  int64_t bytes_read_ = 0;
};

// Opens `names` (rank -> file names) and checks they are one consistent save.
absl::StatusOr<std::vector<SavedFile>> OpenAll(
    const std::string& dir, const std::map<int, std::map<int, std::string>>& names) {
  std::vector<SavedFile> files;
  for (const auto& [rank, parts] : names) {
    for (const auto& [part, name] : parts) {
      LOOM_ASSIGN_OR_RETURN(SavedFile f, OpenSaved((fs::path(dir) / name).string(), rank));
      if (f.num_parts != static_cast<int>(parts.size()) || part >= f.num_parts) {
        return absl::DataLossError(absl::StrCat(f.header->path(), ": rank ", rank, " was saved in ",
                                                f.num_parts, " parts, the directory holds ",
                                                parts.size()));
      }
      if (!files.empty() &&
          (f.tp_size != files[0].tp_size || f.weight_version != files[0].weight_version)) {
        return absl::FailedPreconditionError(absl::StrCat(
            dir, ": mixed sharded states: ", files[0].header->path(), " was saved at tp size ",
            files[0].tp_size, " (weight version ", files[0].weight_version, "), ", f.header->path(),
            " at tp size ", f.tp_size, " (weight version ", f.weight_version,
            "); save each state into its own directory"));
      }
      files.push_back(std::move(f));
    }
  }
  return files;
}

}  // namespace

absl::StatusOr<std::unique_ptr<WeightSource>> OpenShardedStateSource(const std::string& dir,
                                                                     int rank, int tp_size) {
  if (tp_size < 1 || rank < 0 || rank >= tp_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("rank ", rank, " of tp size ", tp_size, " cannot load ", dir));
  }
  std::map<int, std::map<int, std::string>> names;  // rank -> part -> file name
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    int r = 0, part = 0;
    const std::string name = it->path().filename().string();
    if (ParsePartName(name, &r, &part)) names[r][part] = name;
  }
  if (ec) {
    return absl::NotFoundError(absl::StrCat(dir, ": cannot list sharded state: ", ec.message()));
  }
  if (names.empty()) {
    return absl::NotFoundError(
        absl::StrCat(dir, ": no sharded-state files (model-rank-*-part-*.safetensors)"));
  }
  // Saved at this TP size: this rank's own files are all it needs.
  if (auto own = names.find(rank); own != names.end()) {
    LOOM_ASSIGN_OR_RETURN(std::vector<SavedFile> files, OpenAll(dir, {*own}));
    if (files[0].tp_size == tp_size) {
      return std::make_unique<ShardedStateSource>(dir, std::move(files));
    }
  }
  LOOM_ASSIGN_OR_RETURN(std::vector<SavedFile> files, OpenAll(dir, names));
  return std::make_unique<ShardedStateSource>(dir, std::move(files));
}

}  // namespace loom
