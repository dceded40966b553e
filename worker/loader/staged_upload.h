// How a load reaches a model on a device: through two staging buffers in the memory the device
// copies from fastest (pinned host memory on CUDA). The source reads or generates part i into
// one buffer while the copy of part i-1 out of the other is still running, so a load moves at
// the slower of reading and copying rather than their sum, and each byte crosses host memory
// once (read straight into the staging buffer, DMA'd from there). A buffer is reused only after
// the fence recorded behind its last copy has passed.
//
// On the host device there is nothing to stage: Decoder::WritePart fills the model's own buffer.
// Not thread-safe: one load uses one StagedUpload.
#ifndef LOOM_WORKER_LOADER_STAGED_UPLOAD_H_
#define LOOM_WORKER_LOADER_STAGED_UPLOAD_H_

#include <array>
#include <cstdint>
#include <functional>

#include "absl/status/status.h"
#include "common/tensor.h"
#include "kernels/execution_context.h"

namespace loom {

class StagedUpload {
 public:
  explicit StagedUpload(kernels::ExecutionContext& context) : context_(context) {}
  ~StagedUpload();  // waits for the copies still reading the buffers

  StagedUpload(const StagedUpload&) = delete;
  StagedUpload& operator=(const StagedUpload&) = delete;

  // Fills a staging tensor of `dst`'s dtype and shape through `fill`, then queues its copy into
  // `dst` (contiguous, on the context's device). On error nothing is queued for this part.
  absl::Status Write(const Tensor& dst, const std::function<absl::Status(Tensor& host)>& fill);
  // Waits until every queued copy is done: the model holds what was written.
  absl::Status Finish();

 private:
  struct Buffer {
    Tensor bytes;            // staging memory, grown to the largest part it carried
    uint64_t fence = 0;      // behind its last copy
    bool in_flight = false;  // that fence not yet waited for
  };
  absl::Status Drain(Buffer& buffer);

  kernels::ExecutionContext& context_;
  std::array<Buffer, 2> buffers_;
  size_t next_ = 0;
};

}  // namespace loom

#endif  // LOOM_WORKER_LOADER_STAGED_UPLOAD_H_
