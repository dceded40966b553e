#include "worker/loader/region_reader.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "worker/loader/stage_pacer.h"

namespace loom {

absl::StatusOr<std::unique_ptr<PositionalFile>> PositionalFile::Open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    std::string msg = absl::StrCat(path, ": cannot open: ", std::strerror(err));
    return err == ENOENT ? absl::NotFoundError(msg) : absl::InternalError(msg);
  }
  return std::unique_ptr<PositionalFile>(new PositionalFile(fd, path));
}

PositionalFile::~PositionalFile() { ::close(fd_); }

absl::Status PositionalFile::ReadAt(uint64_t offset, void* dst, size_t n) const {
  char* out = static_cast<char*>(dst);
  // Chunked: some kernels cap a single read at ~2 GB, and a paced stage pauses between chunks.
  StagePacer* pacer = ActivePacer();
  const size_t chunk = pacer != nullptr ? size_t{StagePacer::kChunkBytes} : size_t{1} << 30;
  while (n > 0) {
    const ssize_t r = ::pread(fd_, out, std::min(n, chunk), static_cast<off_t>(offset));
    if (r < 0) {
      if (errno == EINTR) continue;
      return absl::InternalError(
          absl::StrCat(path_, ": read at byte ", offset, " failed: ", std::strerror(errno)));
    }
    if (r == 0) {
      return absl::DataLossError(absl::StrCat(path_, ": file ends at byte ", offset, " with ", n,
                                              " bytes still to read (truncated file?)"));
    }
    out += r;
    offset += static_cast<uint64_t>(r);
    n -= static_cast<size_t>(r);
    if (pacer != nullptr) pacer->Pace();
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> ReadBox(const StoredTensor& src, const std::vector<int64_t>& src_lo,
                                const std::vector<int64_t>& count, const Tensor& dst,
                                const std::vector<int64_t>& dst_lo) {
  const size_t nd = src.shape.size();
  if (src_lo.size() != nd || count.size() != nd || dst_lo.size() != nd ||
      static_cast<size_t>(dst.dim()) != nd || dst.dtype() != src.dtype || !dst.is_contiguous()) {
    return absl::InternalError(absl::StrCat(src.file->path(), ": tensor ", src.name,
                                            ": box read with mismatched ranks or dtypes"));
  }
  for (size_t d = 0; d < nd; ++d) {
    if (count[d] < 0 || src_lo[d] < 0 || dst_lo[d] < 0 || src_lo[d] + count[d] > src.shape[d] ||
        dst_lo[d] + count[d] > dst.shape()[d]) {
      return absl::InternalError(
          absl::StrCat(src.file->path(), ": tensor ", src.name, ": box out of bounds"));
    }
    if (count[d] == 0) return 0;
  }
  // Row-major element strides of the source and destination.
  std::vector<int64_t> src_stride(nd, 1), dst_stride(nd, 1);
  for (size_t d = nd; d-- > 1;) {
    src_stride[d - 1] = src_stride[d] * src.shape[d];
    dst_stride[d - 1] = dst_stride[d] * dst.shape()[d];
  }
  const int64_t esize = static_cast<int64_t>(DTypeSize(src.dtype));
  const int64_t run = nd == 0 ? 1 : count[nd - 1];  // elements per innermost run
  char* out = static_cast<char*>(dst.raw_data());

  // Walk the runs (every index of the leading dims) in order, merging a run into the pending one
  // when it continues it in both the file and the destination.
  std::vector<int64_t> idx(nd, 0);
  int64_t pending_src = -1, pending_dst = 0, pending_len = 0;  // in elements
  int64_t total = 0;
  auto flush = [&]() -> absl::Status {
    if (pending_len == 0) return absl::OkStatus();
    total += pending_len * esize;
    return src.file->ReadAt(src.offset + static_cast<uint64_t>(pending_src * esize),
                            out + pending_dst * esize, static_cast<size_t>(pending_len * esize));
  };
  while (true) {
    int64_t s = 0, t = 0;
    for (size_t d = 0; d < nd; ++d) {
      s += (src_lo[d] + idx[d]) * src_stride[d];
      t += (dst_lo[d] + idx[d]) * dst_stride[d];
    }
    if (pending_len > 0 && s == pending_src + pending_len && t == pending_dst + pending_len) {
      pending_len += run;
    } else {
      absl::Status st = flush();
      if (!st.ok()) return st;
      pending_src = s;
      pending_dst = t;
      pending_len = run;
    }
    // Next index over the leading dims (the last dim is the run itself).
    size_t d = nd <= 1 ? 0 : nd - 1;
    while (d > 0 && ++idx[d - 1] == count[d - 1]) idx[--d] = 0;
    if (d == 0) break;
  }
  absl::Status st = flush();
  if (!st.ok()) return st;
  return total;
}

absl::Status ValidateRegion(const ParameterInfo& p) {
  for (int64_t d : p.shape) {
    if (d < 0) return absl::InvalidArgumentError(absl::StrCat(p.name, ": negative dimension"));
  }
  if (p.split_dim < 0) return absl::OkStatus();
  if (static_cast<size_t>(p.split_dim) >= p.shape.size() || p.start < 0 || p.length < 0 ||
      p.start > p.shape[p.split_dim] || p.length > p.shape[p.split_dim] - p.start) {
    return absl::InvalidArgumentError(absl::StrCat(p.name, ": region [", p.start, ", ",
                                                   p.start + p.length, ") along dim ", p.split_dim,
                                                   " is outside shape ", ShapeString(p.shape)));
  }
  return absl::OkStatus();
}

absl::Status CheckNoUnknownTensors(const std::map<std::string, std::string>& held,
                                   const std::vector<ParameterInfo>& params, bool tied) {
  std::set<std::string> expected;
  for (const ParameterInfo& p : params) expected.insert(p.name);
  for (const auto& [name, file] : held) {
    if (expected.count(name) || absl::EndsWith(name, "rotary_emb.inv_freq")) continue;
    if (name == "lm_head.weight" && tied) continue;
    return absl::InvalidArgumentError(
        absl::StrCat(file, ": unexpected tensor ", name, " (not a parameter of this model)"));
  }
  return absl::OkStatus();
}

}  // namespace loom
