// The `auto` weight source: an HF model directory's safetensors. Headers come from Checkpoint
// (its validation and directory rules); tensor data is read with pread, only this rank's region
// of each parameter, so bytes_read is exactly the bytes this rank holds.
#include <set>

#include "absl/strings/str_cat.h"
#include "common/safetensors.h"
#include "common/status.h"
#include "worker/loader/region_reader.h"
#include "worker/loader/weight_source.h"

namespace loom {
namespace {

// The file's entry matches the parameter: a float tensor of its full shape.
absl::Status CheckEntry(const std::string& path, const SafetensorsEntry& e,
                        const ParameterInfo& p) {
  if (!IsFloat(e.dtype)) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": ", p.name, ": expected a float tensor, got ", DTypeName(e.dtype)));
  }
  if (e.shape != p.shape) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", p.name, ": expected shape ",
                                                   ShapeString(p.shape), ", got ",
                                                   ShapeString(e.shape)));
  }
  absl::Status s = ValidateRegion(p);
  if (!s.ok()) return absl::Status(s.code(), absl::StrCat(path, ": ", s.message()));
  return absl::OkStatus();
}

class SafetensorsSource : public WeightSource {
 public:
  SafetensorsSource(std::string dir, std::unique_ptr<Checkpoint> ckpt)
      : dir_(std::move(dir)), ckpt_(std::move(ckpt)) {}

  absl::Status Check(const std::vector<ParameterInfo>& params, bool tied) override {
    for (const ParameterInfo& p : params) {
      LOOM_ASSIGN_OR_RETURN(const SafetensorsFile* f, Locate(p.name));
      LOOM_RETURN_IF_ERROR(CheckEntry(f->path(), *f->Find(p.name), p));
    }
    std::map<std::string, std::string> held;
    for (const std::string& name : ckpt_->Names()) held[name] = ckpt_->FileOf(name);
    return CheckNoUnknownTensors(held, params, tied);
  }

  absl::StatusOr<Tensor> Read(const ParameterInfo& p) override {
    LOOM_ASSIGN_OR_RETURN(const SafetensorsFile* f, Locate(p.name));
    Tensor out = Tensor::Empty(f->Find(p.name)->dtype, p.local_shape());
    LOOM_RETURN_IF_ERROR(ReadRegion(*f, p, out));
    return out;
  }

  absl::Status ReadInto(const ParameterInfo& p, Tensor& dst) override {
    LOOM_ASSIGN_OR_RETURN(const SafetensorsFile* f, Locate(p.name));
    if (f->Find(p.name)->dtype != dst.dtype() || !dst.is_contiguous() ||
        dst.shape() != p.local_shape()) {
      return WeightSource::ReadInto(p, dst);  // a dtype conversion goes through Read
    }
    return ReadRegion(*f, p, dst);
  }

  int64_t bytes_read() const override { return bytes_read_; }

  std::vector<std::string> files_opened() const override {
    std::set<std::string> files;
    for (const std::string& name : ckpt_->Names()) files.insert(ckpt_->FileOf(name));
    return {files.begin(), files.end()};
  }

 private:
  // p's region of its tensor in `f`, read into `out` (contiguous, the file's dtype).
  absl::Status ReadRegion(const SafetensorsFile& f, const ParameterInfo& p, const Tensor& out) {
    const SafetensorsEntry& e = *f.Find(p.name);
    LOOM_RETURN_IF_ERROR(CheckEntry(f.path(), e, p));
    std::unique_ptr<PositionalFile>& file = fds_[f.path()];
    if (file == nullptr) {
      LOOM_ASSIGN_OR_RETURN(file, PositionalFile::Open(f.path()));
    }
    const StoredTensor src{file.get(), p.name, f.data_offset() + e.begin, e.dtype, e.shape};
    const std::vector<int64_t> zeros(p.shape.size(), 0);
    std::vector<int64_t> lo = zeros;
    if (p.split_dim >= 0) lo[p.split_dim] = p.start;
    LOOM_ASSIGN_OR_RETURN(int64_t n, ReadBox(src, lo, p.local_shape(), out, zeros));
    bytes_read_ += n;
    return absl::OkStatus();
  }

  absl::StatusOr<const SafetensorsFile*> Locate(const std::string& name) const {
    const SafetensorsFile* f = ckpt_->FileFor(name);
    if (f == nullptr) {
      return absl::NotFoundError(
          absl::StrCat(dir_, ": tensor ", name, " is missing from the checkpoint"));
    }
    return f;
  }

  std::string dir_;
  std::unique_ptr<Checkpoint> ckpt_;
  std::map<std::string, std::unique_ptr<PositionalFile>> fds_;  // path -> descriptor, lazily
  int64_t bytes_read_ = 0;
};

}  // namespace

absl::StatusOr<std::unique_ptr<WeightSource>> OpenSafetensorsSource(const std::string& model_dir) {
  LOOM_ASSIGN_OR_RETURN(std::unique_ptr<Checkpoint> ckpt, Checkpoint::Open(model_dir));
  return std::make_unique<SafetensorsSource>(model_dir, std::move(ckpt));
}

}  // namespace loom
