// The safetensors format: a validating mmap reader for single files and sharded checkpoints
// (model.safetensors.index.json), and a writer.
//
// Layout: 8-byte little-endian header length N, N bytes of JSON
// {"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}},
// then the data region; offsets are relative to the data region.
// The reader validates everything before any tensor is handed out: header length bound,
// well-formed JSON, known dtypes, shape x dtype size equal to the byte range, ranges inside the
// file and not overlapping. Errors name the file and the problem (and the tensor where there is
// one): DataLoss for a malformed file, NotFound for a missing file or tensor, other codes for
// I/O failures.
#ifndef LOOM_COMMON_SAFETENSORS_H_
#define LOOM_COMMON_SAFETENSORS_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "common/tensor.h"

namespace loom {

struct SafetensorsEntry {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // byte offsets in the data region
  uint64_t end = 0;
};

// One .safetensors file, memory-mapped read-only. Thread-safe after Open.
class SafetensorsFile {
 public:
  static absl::StatusOr<std::unique_ptr<SafetensorsFile>> Open(const std::string& path);
  ~SafetensorsFile();

  const std::string& path() const { return path_; }
  const std::vector<SafetensorsEntry>& entries() const { return entries_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  bool Has(const std::string& name) const;
  // `name`'s entry, or null when absent.
  const SafetensorsEntry* Find(const std::string& name) const;
  // Byte offset of the data region in the file (8 + header length): an entry's bytes are at
  // [data_offset() + begin, data_offset() + end), for readers that use pread instead of the map.
  uint64_t data_offset() const { return data_offset_; }
  // A read-only view into the mapping; the view keeps the mapping alive (it may outlive this
  // object). A tensor whose bytes are not aligned to its element size in the file is returned as
  // an aligned copy instead. NotFound when absent.
  absl::StatusOr<Tensor> Get(const std::string& name) const;

 private:
  SafetensorsFile() = default;
  std::string path_;
  std::shared_ptr<void> mapping_;  // unmaps on last release
  const char* data_region_ = nullptr;
  uint64_t data_offset_ = 0;
  std::vector<SafetensorsEntry> entries_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// All safetensors of a model directory: model.safetensors.index.json's shards when the index
// exists (every listed shard must exist and hold the names the index gives it), else every
// *.safetensors file in the directory. A name present in two files is an error.
class Checkpoint {
 public:
  static absl::StatusOr<std::unique_ptr<Checkpoint>> Open(const std::string& dir);

  std::vector<std::string> Names() const;  // sorted
  bool Has(const std::string& name) const;
  absl::StatusOr<Tensor> Get(const std::string& name) const;
  // Which file holds `name` (for error messages); empty when none does.
  std::string FileOf(const std::string& name) const;
  // The file that holds `name`, or null when none does.
  const SafetensorsFile* FileFor(const std::string& name) const;

 private:
  Checkpoint() = default;
  std::string dir_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, size_t> where_;  // name -> index into files_
};

// Writes `tensors` (any layout, written contiguous in their own dtype) with `metadata` to `path`
// atomically (a temporary file beside it, fsynced, then renamed into place). Names must be unique.
// The header lists names sorted and is space-padded to a multiple of 8 bytes; the data is laid
// out contiguously, widest dtype first then by name, so every tensor is aligned (as HF's writer
// does). Errors name `path`.
absl::Status WriteSafetensors(const std::string& path,
                              const std::vector<std::pair<std::string, Tensor>>& tensors,
                              const std::map<std::string, std::string>& metadata = {});

}  // namespace loom

#endif  // LOOM_COMMON_SAFETENSORS_H_
