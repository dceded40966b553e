// Loads a decoder's weights from an HF model directory's safetensors (the `auto` load format).
#ifndef LOOM_WORKER_LOADER_CHECKPOINT_LOADER_H_
#define LOOM_WORKER_LOADER_CHECKPOINT_LOADER_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "worker/model/decoder.h"

namespace loom {

struct LoadReport {
  int64_t tensors = 0;
  int64_t bytes_read = 0;  // checkpoint bytes of the tensors this rank consumed
  double seconds = 0;
};

// Every parameter the decoder expects must be in the checkpoint with its full shape; tensors the
// decoder does not know are an error too (another architecture's checkpoint), except buffers HF
// saves that carry no weights (rotary inv_freq) and a duplicate lm_head of a tied model.
absl::StatusOr<LoadReport> LoadCheckpoint(const std::string& model_dir, Decoder& decoder);

}  // namespace loom

#endif  // LOOM_WORKER_LOADER_CHECKPOINT_LOADER_H_
