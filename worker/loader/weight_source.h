// WeightSource: where one load's weights come from. Each source hands out, parameter by
// parameter, exactly the part this rank holds (ParameterInfo's region), reading nothing else.
// Every source ends in the decoder's own parameter buffers (DESIGN.md §3.3): per-rank loads
// write through ReadInto straight into Decoder::WritePart's host tensor (the part itself on a
// host rank, a staging buffer on a GPU rank); a broadcast load reads full tensors on rank 0,
// which sends each rank its part for Decoder::LoadWeight.
//
// A load is two passes: Check looks at every parameter (names, full shapes, dtypes, files) without
// reading tensor data and without touching the model, so a bad source fails before any weight is
// written; Read then hands out the data. Not thread-safe: one load uses one source.
#ifndef LOOM_WORKER_LOADER_WEIGHT_SOURCE_H_
#define LOOM_WORKER_LOADER_WEIGHT_SOURCE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/tensor.h"
#include "kernels/execution_context.h"
#include "worker/model/parameter_info.h"

namespace loom {

class WeightSource {
 public:
  virtual ~WeightSource() = default;

  // Every parameter in `params` can be read (present, with its full shape, a float dtype) and the
  // source holds nothing the model does not know (another architecture's checkpoint), except
  // tensors that carry no weights (rotary inv_freq) and lm_head.weight when `tied`. Reads no
  // tensor data. Errors name the file and the tensor.
  virtual absl::Status Check(const std::vector<ParameterInfo>& params, bool tied) = 0;

  // This rank's part of `p`: a tensor of shape p.local_shape() in the source's own float dtype.
  virtual absl::StatusOr<Tensor> Read(const ParameterInfo& p) = 0;
  // This rank's part of `p` written into `dst` (contiguous, shape p.local_shape(), any float
  // dtype), converting as needed. Sources override it to skip the intermediate tensor — reading
  // or generating straight into the model's buffer halves the memory traffic of a load.
  virtual absl::Status ReadInto(const ParameterInfo& p, Tensor& dst) {
    absl::StatusOr<Tensor> part = Read(p);
    if (!part.ok()) return part.status();
    return dst.CopyFrom(*part);
  }

  // Whether the weights are computed rather than read (dummy): GenerateInto then writes a part
  // on the model's own device, with no host buffer and no copy.
  virtual bool generates() const { return false; }
  virtual absl::Status GenerateInto(kernels::ExecutionContext& context, const ParameterInfo& p,
                                    Tensor& part) {
    return absl::UnimplementedError("this weight source reads its weights; it generates none");
  }

  // Bytes of tensor data read from files so far (0 for generated weights).
  virtual int64_t bytes_read() const = 0;
  // Every file this source has read tensor data or headers from, sorted.
  virtual std::vector<std::string> files_opened() const = 0;
};

// `auto`: the safetensors of an HF model directory (model.safetensors.index.json's shards, or
// every *.safetensors file). Read uses positional reads of the contiguous byte runs of the
// region only — a rank never reads another rank's slices.
absl::StatusOr<std::unique_ptr<WeightSource>> OpenSafetensorsSource(const std::string& model_dir);

// `dummy`: element i (row-major index in the full tensor) of parameter `name` is a uniform value
// in [-range, range] from a counter-based generator keyed by (seed, name, i): the same full model
// at every TP size, different in every parameter. Only the region is generated, on the
// model's device (GenerateInto); Read gives f32.
std::unique_ptr<WeightSource> MakeDummySource(uint64_t seed, double range);

// `sharded_state`: a directory written by SaveShardedState. When it was saved at `tp_size`, rank
// `rank` opens only its own files; otherwise every file's header is read and each region is
// assembled from the saved pieces that overlap it (reading only the overlapping bytes). Check
// fails when the saved pieces do not cover a region.
absl::StatusOr<std::unique_ptr<WeightSource>> OpenShardedStateSource(const std::string& dir,
                                                                     int rank, int tp_size);

struct ShardedStateInfo {
  int rank = 0;
  int tp_size = 1;
  std::string source;           // where the weights came from (model dir, "dummy", ...)
  uint64_t weight_version = 0;
  int64_t max_file_size = 0;    // bytes of tensor data per file; 0 = one file per rank
};

struct SaveReport {
  std::vector<std::string> files;  // written, sorted
  int64_t bytes_written = 0;       // the files' sizes, headers included
};

// Writes one rank's parts: `out_dir`/model-rank-{rank}-part-{p}.safetensors, each file's
// metadata recording the tp size, rank, source, weight version, the rank's number of parts
// ("loom.num_parts", so a missing part is noticed) and the region of every tensor it holds
// ("loom.regions": name -> {"shape", "split_dim", "start", "length"}), so the directory can be
// loaded at any TP size. Parts go into files in the order given, a new file starting when the
// next part would pass max_file_size (a part larger than that gets a file of its own). This
// rank's files from an earlier save are removed first; other ranks' files are left alone. `parts` pairs each parameter with this rank's part
// (shape local_shape()). Files are written atomically; `out_dir` is created when missing.
absl::StatusOr<SaveReport> SaveShardedState(
    const std::string& out_dir, const std::vector<std::pair<ParameterInfo, Tensor>>& parts,
    const ShardedStateInfo& info);

// Copies what a model directory holds besides weights (config.json, generation_config.json,
// tokenizer files, ...: every regular file except *.safetensors and model.safetensors.index.json)
// into `out_dir`, so that directory is a complete model directory.
absl::Status CopyNonWeightFiles(const std::string& model_dir, const std::string& out_dir);

}  // namespace loom

#endif  // LOOM_WORKER_LOADER_WEIGHT_SOURCE_H_
