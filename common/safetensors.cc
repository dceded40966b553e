#include "common/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "nlohmann/json.hpp"

namespace loom {
namespace {

using json = nlohmann::json;

// Real headers are a few MB at most (one entry per tensor); the bound stops a corrupt length
// field from making us parse, or allocate for, gigabytes of garbage.
constexpr uint64_t kMaxHeaderBytes = 100ull * 1024 * 1024;
constexpr char kMetadataKey[] = "__metadata__";
constexpr char kIndexName[] = "model.safetensors.index.json";

absl::Status Corrupt(const std::string& path, const std::string& what) {
  return absl::DataLossError(absl::StrCat(path, ": ", what));
}

absl::Status BadTensor(const std::string& path, const std::string& name, const std::string& what) {
  return Corrupt(path, absl::StrCat("tensor \"", name, "\": ", what));
}

absl::Status ErrnoError(int err, const std::string& path, const std::string& what) {
  std::string msg = absl::StrCat(path, ": ", what, ": ", std::strerror(err));
  if (err == ENOENT) return absl::NotFoundError(msg);
  if (err == EACCES || err == EPERM) return absl::PermissionDeniedError(msg);
  if (err == ENOSPC || err == EDQUOT) return absl::ResourceExhaustedError(msg);
  return absl::InternalError(msg);
}

// Reads a JSON integer that must be >= 0. Floats (even 2.0) and negatives are rejected: the
// format's producers only ever write non-negative integers here.
bool NonNegativeInt(const json& v, uint64_t* out) {
  if (v.is_number_unsigned()) {
    *out = v.get<uint64_t>();
    return true;
  }
  if (v.is_number_integer()) {
    int64_t i = v.get<int64_t>();
    if (i < 0) return false;
    *out = static_cast<uint64_t>(i);
    return true;
  }
  return false;
}

absl::Status ParseEntry(const std::string& path, const std::string& name, const json& v,
                        uint64_t data_size, SafetensorsEntry* e) {
  e->name = name;
  if (!v.is_object()) return BadTensor(path, name, "entry is not a JSON object");

  auto dtype_it = v.find("dtype");
  if (dtype_it == v.end() || !dtype_it->is_string()) {
    return BadTensor(path, name, "missing or non-string \"dtype\"");
  }
  absl::StatusOr<DType> dtype = ParseDType(dtype_it->get_ref<const std::string&>());
  if (!dtype.ok()) return BadTensor(path, name, std::string(dtype.status().message()));
  e->dtype = *dtype;

  auto shape_it = v.find("shape");
  if (shape_it == v.end() || !shape_it->is_array()) {
    return BadTensor(path, name, "missing or non-array \"shape\"");
  }
  // Byte count computed with overflow checks: a corrupt shape like [2^40, 2^40] must not wrap
  // around to a small number that happens to match the byte range. Zero dims are counted as 1
  // for the check, so that [0, 2^62, 2^62] (zero bytes, but strides no int64 can hold) is refused
  // too.
  uint64_t span = DTypeSize(e->dtype);
  bool overflow = false, has_zero = false;
  for (const json& d : *shape_it) {
    uint64_t dim = 0;
    if (!NonNegativeInt(d, &dim) || dim > static_cast<uint64_t>(INT64_MAX)) {
      return BadTensor(path, name,
                       absl::StrCat("shape ", shape_it->dump(),
                                    " has an entry that is not a non-negative integer"));
    }
    e->shape.push_back(static_cast<int64_t>(dim));
    has_zero = has_zero || dim == 0;
    overflow = overflow || __builtin_mul_overflow(span, std::max<uint64_t>(dim, 1), &span) ||
               span > static_cast<uint64_t>(INT64_MAX);
  }
  const uint64_t bytes = has_zero ? 0 : span;

  auto off_it = v.find("data_offsets");
  uint64_t begin = 0, end = 0;
  if (off_it == v.end() || !off_it->is_array() || off_it->size() != 2 ||
      !NonNegativeInt((*off_it)[0], &begin) || !NonNegativeInt((*off_it)[1], &end)) {
    return BadTensor(path, name, "\"data_offsets\" must be two non-negative integers");
  }
  if (begin > end) {
    return BadTensor(path, name,
                     absl::StrCat("data_offsets [", begin, ", ", end, "] begin after end"));
  }
  e->begin = begin;
  e->end = end;
  if (overflow || bytes != end - begin) {
    return BadTensor(path, name,
                     absl::StrCat("shape ", ShapeString(e->shape), " x ", DTypeName(e->dtype),
                                  " needs ", overflow ? "more than 2^63" : absl::StrCat(bytes),
                                  " bytes but data_offsets span ", end - begin));
  }
  if (end > data_size) {
    return BadTensor(path, name,
                     absl::StrCat("data_offsets [", begin, ", ", end,
                                  "] extend past the data region of ", data_size, " bytes"));
  }
  return absl::OkStatus();
}

absl::Status ParseMetadata(const std::string& path, const json& v,
                           std::map<std::string, std::string>* out) {
  if (!v.is_object()) return Corrupt(path, "\"__metadata__\" is not a JSON object");
  for (auto it = v.begin(); it != v.end(); ++it) {
    if (!it.value().is_string()) {
      return Corrupt(path,
                     absl::StrCat("\"__metadata__\" value for \"", it.key(), "\" is not a string"));
    }
    (*out)[it.key()] = it.value().get<std::string>();
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadTextFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return ErrnoError(errno, path, "cannot open");
  std::stringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return ErrnoError(errno, path, "read failed");
  return ss.str();
}

// Writes all of [data, data+n), retrying short writes and EINTR.
bool WriteAll(int fd, const char* data, size_t n) {
  while (n > 0) {
    // Chunked: some kernels cap a single write at ~2 GB.
    ssize_t w = ::write(fd, data, std::min<size_t>(n, size_t{1} << 30));
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

// Structural UTF-8 check (lead and continuation bytes). JSON strings must be UTF-8, and HF's
// reader refuses a header that is not.
bool IsValidUtf8(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    const size_t extra = c < 0x80             ? 0
                         : (c & 0xe0) == 0xc0 ? 1
                         : (c & 0xf0) == 0xe0 ? 2
                         : (c & 0xf8) == 0xf0 ? 3
                                              : 4;
    if (extra > 3 || extra > s.size() - i - 1) return false;
    for (size_t k = 1; k <= extra; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xc0) != 0x80) return false;
    }
    i += extra + 1;
  }
  return true;
}

}  // namespace

absl::StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoError(errno, path, "cannot open");
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    return ErrnoError(err, path, "cannot stat");
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a regular file"));
  }
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size < 8) {
    ::close(fd);
    return Corrupt(path,
                   absl::StrCat("file is ", size, " bytes, shorter than the 8-byte header length"));
  }
  void* base = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  int mmap_err = errno;
  ::close(fd);  // the mapping stays valid without the descriptor
  if (base == MAP_FAILED) return ErrnoError(mmap_err, path, "mmap failed");

  auto file = std::unique_ptr<SafetensorsFile>(new SafetensorsFile());
  file->path_ = path;
  file->mapping_ = std::shared_ptr<void>(base, [size](void* p) { ::munmap(p, size); });
  const unsigned char* bytes = static_cast<const unsigned char*>(base);

  uint64_t header_len = 0;  // little-endian on disk, whatever the host
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | bytes[i];
  if (header_len > size - 8) {
    return Corrupt(path, absl::StrCat("header length ", header_len, " exceeds the ", size - 8,
                                      " bytes after the length field (truncated file?)"));
  }
  if (header_len > kMaxHeaderBytes) {
    return Corrupt(path, absl::StrCat("header length ", header_len, " exceeds the ",
                                      kMaxHeaderBytes, "-byte bound"));
  }
  const char* header_text = reinterpret_cast<const char*>(bytes + 8);
  json header = json::parse(header_text, header_text + header_len, nullptr,
                            /*allow_exceptions=*/false);
  if (header.is_discarded()) return Corrupt(path, "header is not valid JSON");
  if (!header.is_object()) return Corrupt(path, "header is not a JSON object");

  const uint64_t data_size = size - 8 - header_len;
  file->data_region_ = header_text + header_len;
  file->data_offset_ = 8 + header_len;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == kMetadataKey) {
      LOOM_RETURN_IF_ERROR(ParseMetadata(path, it.value(), &file->metadata_));
      continue;
    }
    SafetensorsEntry e;
    LOOM_RETURN_IF_ERROR(ParseEntry(path, it.key(), it.value(), data_size, &e));
    file->entries_.push_back(std::move(e));
  }

  // Overlap check over ranges sorted by start. Tracking the furthest end seen (not just the
  // previous entry's) also catches a range nested inside an earlier, longer one.
  std::vector<size_t> order(file->entries_.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  const auto& es = file->entries_;
  std::sort(order.begin(), order.end(), [&es](size_t a, size_t b) {
    return std::tie(es[a].begin, es[a].end) < std::tie(es[b].begin, es[b].end);
  });
  uint64_t max_end = 0;
  size_t max_end_idx = 0;
  for (size_t k = 0; k < order.size(); ++k) {
    const SafetensorsEntry& e = es[order[k]];
    if (k > 0 && e.begin < max_end) {
      const SafetensorsEntry& prev = es[max_end_idx];
      return Corrupt(path, absl::StrCat("tensor \"", e.name, "\" data_offsets [", e.begin, ", ",
                                        e.end, "] overlap tensor \"", prev.name, "\" [", prev.begin,
                                        ", ", prev.end, "]"));
    }
    if (e.end > max_end) {
      max_end = e.end;
      max_end_idx = order[k];
    }
  }
  for (size_t i = 0; i < es.size(); ++i) file->index_[es[i].name] = i;
  return file;
}

SafetensorsFile::~SafetensorsFile() = default;

bool SafetensorsFile::Has(const std::string& name) const { return index_.count(name) > 0; }

const SafetensorsEntry* SafetensorsFile::Find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &entries_[it->second];
}

absl::StatusOr<Tensor> SafetensorsFile::Get(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) {
    return absl::NotFoundError(absl::StrCat(path_, ": no tensor \"", name, "\""));
  }
  const SafetensorsEntry& e = entries_[it->second];
  // The mapping is read-only; the const_cast only satisfies Tensor's untyped pointer. Writing
  // through the view faults, which is the behaviour we want for checkpoint memory.
  void* data = const_cast<char*>(data_region_ + e.begin);
  Tensor view = Tensor::Borrow(data, e.dtype, e.shape, mapping_);
  // Files written without alignment care (odd-sized tensors ahead of wider ones, or a header
  // length that is not a multiple of 8) give views that kernels may not load element-wise;
  // such tensors are handed out as an aligned copy instead.
  if (reinterpret_cast<uintptr_t>(data) % DTypeSize(e.dtype) != 0) return view.Clone();
  return view;
}

absl::StatusOr<std::unique_ptr<Checkpoint>> Checkpoint::Open(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    return absl::NotFoundError(
        absl::StrCat("checkpoint directory ", dir, " does not exist or is not a directory"));
  }
  auto ckpt = std::unique_ptr<Checkpoint>(new Checkpoint());
  ckpt->dir_ = dir;

  // Shard file name -> names the index assigns to it (empty without an index).
  std::map<std::string, std::vector<std::string>> shards;
  const std::string index_path = (fs::path(dir) / kIndexName).string();
  if (fs::exists(index_path, ec)) {
    LOOM_ASSIGN_OR_RETURN(std::string text, ReadTextFile(index_path));
    json index = json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (index.is_discarded() || !index.is_object()) {
      return Corrupt(index_path, "not a valid JSON object");
    }
    auto wm = index.find("weight_map");
    if (wm == index.end() || !wm->is_object()) {
      return Corrupt(index_path, "missing or non-object \"weight_map\"");
    }
    for (auto it = wm->begin(); it != wm->end(); ++it) {
      if (!it.value().is_string()) {
        return Corrupt(index_path,
                       absl::StrCat("weight_map entry \"", it.key(), "\" is not a string"));
      }
      const std::string& shard = it.value().get_ref<const std::string&>();
      // Shards live beside the index; a path here could reach files outside the checkpoint.
      if (shard.empty() || shard.find('/') != std::string::npos || shard == "." || shard == "..") {
        return Corrupt(index_path, absl::StrCat("weight_map entry \"", it.key(), "\" names \"",
                                                shard, "\", which is not a plain file name"));
      }
      shards[shard].push_back(it.key());
    }
    if (shards.empty()) return Corrupt(index_path, "\"weight_map\" is empty");
  } else {
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
      const fs::path& p = it->path();
      std::error_code type_ec;
      if (p.extension() == ".safetensors" && it->is_regular_file(type_ec)) {
        shards[p.filename().string()];
      }
    }
    if (ec) return ErrnoError(ec.value(), dir, "cannot list directory");
    if (shards.empty()) {
      return absl::NotFoundError(absl::StrCat("no .safetensors files in ", dir));
    }
  }

  for (const auto& [shard, listed] : shards) {
    const std::string path = (fs::path(dir) / shard).string();
    absl::StatusOr<std::unique_ptr<SafetensorsFile>> file = SafetensorsFile::Open(path);
    if (!file.ok()) {
      if (absl::IsNotFound(file.status()) && !listed.empty()) {
        return absl::NotFoundError(absl::StrCat(index_path, " names shard \"", shard,
                                                "\", which is missing: ", file.status().message()));
      }
      return file.status();
    }
    for (const std::string& name : listed) {
      if (!(*file)->Has(name)) {
        return absl::NotFoundError(absl::StrCat(index_path, " puts tensor \"", name, "\" in ", path,
                                                ", which does not hold it"));
      }
    }
    const size_t file_idx = ckpt->files_.size();
    for (const SafetensorsEntry& e : (*file)->entries()) {
      auto [it, inserted] = ckpt->where_.emplace(e.name, file_idx);
      if (!inserted) {
        return absl::InvalidArgumentError(absl::StrCat("tensor \"", e.name, "\" is in both ",
                                                       ckpt->files_[it->second]->path(), " and ",
                                                       path));
      }
    }
    ckpt->files_.push_back(std::move(*file));
  }
  return ckpt;
}

std::vector<std::string> Checkpoint::Names() const {
  std::vector<std::string> names;
  names.reserve(where_.size());
  for (const auto& [name, idx] : where_) names.push_back(name);
  return names;
}

bool Checkpoint::Has(const std::string& name) const { return where_.count(name) > 0; }

absl::StatusOr<Tensor> Checkpoint::Get(const std::string& name) const {
  auto it = where_.find(name);
  if (it == where_.end()) {
    return absl::NotFoundError(absl::StrCat("checkpoint ", dir_, " has no tensor \"", name, "\""));
  }
  return files_[it->second]->Get(name);
}

std::string Checkpoint::FileOf(const std::string& name) const {
  auto it = where_.find(name);
  return it == where_.end() ? std::string() : files_[it->second]->path();
}

const SafetensorsFile* Checkpoint::FileFor(const std::string& name) const {
  auto it = where_.find(name);
  return it == where_.end() ? nullptr : files_[it->second].get();
}

absl::Status WriteSafetensors(const std::string& path,
                              const std::vector<std::pair<std::string, Tensor>>& tensors,
                              const std::map<std::string, std::string>& metadata) {
  // Data order: widest dtype first, then by name (what the HF writer does). Each tensor's byte
  // size is a multiple of its element size, so with the header padded to 8 bytes every tensor
  // starts aligned for its dtype while the ranges stay contiguous, as HF's reader requires.
  std::vector<size_t> order(tensors.size());
  std::set<std::string> seen;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto& [name, t] = tensors[i];
    order[i] = i;
    if (!seen.insert(name).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": tensor name \"", name, "\" given twice"));
    }
    if (name == kMetadataKey) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": \"", kMetadataKey, "\" is reserved, not a tensor name"));
    }
    if (!IsValidUtf8(name)) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": tensor name is not valid UTF-8"));
    }
    if (!t.defined()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": tensor \"", name, "\" is undefined"));
    }
  }
  for (const auto& [k, v] : metadata) {
    if (!IsValidUtf8(k) || !IsValidUtf8(v)) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": metadata is not valid UTF-8"));
    }
  }
  std::sort(order.begin(), order.end(), [&tensors](size_t a, size_t b) {
    size_t sa = DTypeSize(tensors[a].second.dtype()), sb = DTypeSize(tensors[b].second.dtype());
    if (sa != sb) return sa > sb;
    return tensors[a].first < tensors[b].first;
  });

  json header = json::object();  // keys come out sorted by name
  std::vector<Tensor> data(tensors.size());
  uint64_t offset = 0;
  for (size_t i : order) {
    const auto& [name, t] = tensors[i];
    data[i] = t.is_contiguous() ? t : t.Clone();
    const uint64_t n = data[i].nbytes();
    header[name] = {{"dtype", DTypeName(t.dtype())},
                    {"shape", t.shape()},
                    {"data_offsets", {offset, offset + n}}};
    offset += n;
  }
  if (!metadata.empty()) header[kMetadataKey] = metadata;
  // `replace` never throws; the checks above already refused names it would have to rewrite,
  // short of overlong encodings, which it turns into U+FFFD rather than aborting the write.
  std::string header_text = header.dump(-1, ' ', false, json::error_handler_t::replace);
  header_text.append((8 - header_text.size() % 8) % 8, ' ');
  char len_bytes[8];
  for (int i = 0; i < 8; ++i) {
    len_bytes[i] = static_cast<char>((header_text.size() >> (8 * i)) & 0xff);
  }

  // Unique per process and call, so concurrent writers of one path never share a temp file.
  static std::atomic<uint64_t> counter{0};
  const std::string tmp = absl::StrCat(path, ".tmp.", ::getpid(), ".", counter++);
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoError(errno, path, absl::StrCat("cannot create ", tmp));
  auto fail = [&](const std::string& what) {
    absl::Status s = ErrnoError(errno, path, what);
    if (fd >= 0) ::close(fd);
    ::unlink(tmp.c_str());
    return s;
  };
  if (!WriteAll(fd, len_bytes, 8) || !WriteAll(fd, header_text.data(), header_text.size())) {
    return fail("write failed");
  }
  for (size_t i : order) {
    if (!WriteAll(fd, static_cast<const char*>(data[i].raw_data()), data[i].nbytes())) {
      return fail("write failed");
    }
  }
  // fsync before rename: otherwise a crash can leave the final name pointing at a short file.
  if (::fsync(fd) != 0) return fail("fsync failed");
  int rc = ::close(fd);
  fd = -1;
  if (rc != 0) return fail("close failed");
  if (::rename(tmp.c_str(), path.c_str()) != 0) return fail(absl::StrCat("rename from ", tmp));
  return absl::OkStatus();
}

}  // namespace loom
