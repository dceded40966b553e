// Reading a rectangle of a tensor stored in a file, for the file-backed weight sources (`auto`,
// `sharded_state`). A rank reads only its own slice: the rectangle's contiguous byte runs are read
// with pread(2), adjacent runs coalesced into one call, so the bytes read are exactly the
// rectangle's bytes (no page faults on a mapping, no neighbour's rows pulled in by readahead of
// our own making). Also the checks those sources share: region bounds and the unknown-tensor rule.
#ifndef LOOM_WORKER_LOADER_REGION_READER_H_
#define LOOM_WORKER_LOADER_REGION_READER_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/tensor.h"
#include "worker/model/parameter_info.h"

namespace loom {

// A read-only file descriptor for positional reads; closes on destruction. Thread-safe.
class PositionalFile {
 public:
  static absl::StatusOr<std::unique_ptr<PositionalFile>> Open(const std::string& path);
  ~PositionalFile();
  PositionalFile(const PositionalFile&) = delete;
  PositionalFile& operator=(const PositionalFile&) = delete;

  const std::string& path() const { return path_; }
  // Reads exactly `n` bytes at `offset`; DataLoss naming the file when it ends first.
  absl::Status ReadAt(uint64_t offset, void* dst, size_t n) const;

 private:
  PositionalFile(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  int fd_;
  std::string path_;
};

// A tensor stored contiguous and row-major at byte `offset` of `file`.
struct StoredTensor {
  const PositionalFile* file = nullptr;
  std::string name;  // for error messages
  uint64_t offset = 0;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
};

// Copies the box of `src` that starts at `src_lo` and spans `count` elements per dimension into
// the contiguous tensor `dst` (same dtype) at `dst_lo`. Returns the bytes read (the box's bytes).
absl::StatusOr<int64_t> ReadBox(const StoredTensor& src, const std::vector<int64_t>& src_lo,
                                const std::vector<int64_t>& count, const Tensor& dst,
                                const std::vector<int64_t>& dst_lo);

// `p`'s region lies inside its full shape (split_dim a dimension of it, the range inside it).
absl::Status ValidateRegion(const ParameterInfo& p);

// Every name the source holds (name -> file, for the message) is a parameter in `params`, a
// rotary inv_freq buffer, or lm_head.weight of a `tied` model. InvalidArgument naming the file
// and the first unknown tensor otherwise.
absl::Status CheckNoUnknownTensors(const std::map<std::string, std::string>& held,
                                   const std::vector<ParameterInfo>& params, bool tied);

}  // namespace loom

#endif  // LOOM_WORKER_LOADER_REGION_READER_H_
