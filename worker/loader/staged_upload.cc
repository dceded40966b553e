#include "worker/loader/staged_upload.h"

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace loom {

StagedUpload::~StagedUpload() { (void)Finish(); }

absl::Status StagedUpload::Drain(Buffer& buffer) {
  if (!buffer.in_flight) return absl::OkStatus();
  buffer.in_flight = false;
  return context_.WaitFence(buffer.fence);
}

absl::Status StagedUpload::Write(const Tensor& dst,
                                 const std::function<absl::Status(Tensor& host)>& fill) {
  if (!dst.is_contiguous()) {
    return absl::InvalidArgumentError(
        absl::StrCat("staged upload: ", dst.DebugString(), " is not contiguous"));
  }
  Buffer& buffer = buffers_[next_];
  next_ = (next_ + 1) % buffers_.size();
  // The copy that last read this buffer must be done before the source writes into it.
  LOOM_RETURN_IF_ERROR(Drain(buffer));
  if (!buffer.bytes.defined() || buffer.bytes.nbytes() < dst.nbytes()) {
    // Raw bytes, in words (no byte dtype): any part's dtype views it.
    const int64_t words = static_cast<int64_t>((dst.nbytes() + 3) / 4);
    LOOM_ASSIGN_OR_RETURN(buffer.bytes, context_.AllocateStaging(DType::kI32, {words}));
  }
  Tensor host = Tensor::Borrow(buffer.bytes.raw_data(), dst.dtype(), dst.shape());
  LOOM_RETURN_IF_ERROR(fill(host));
  LOOM_RETURN_IF_ERROR(context_.UploadAsync(host, dst));
  LOOM_ASSIGN_OR_RETURN(buffer.fence, context_.RecordFence());
  buffer.in_flight = true;
  return absl::OkStatus();
}

absl::Status StagedUpload::Finish() {
  absl::Status status;
  for (Buffer& buffer : buffers_) {
    absl::Status drained = Drain(buffer);
    if (status.ok()) status = drained;
  }
  return status;
}

}  // namespace loom
