// Device graphs for decode steps: a decode batch of b sequences is padded to the smallest
// bucket B >= b, its inputs are written by Decoder::Prepare, and the forward pass of B tokens is
// replayed from a graph captured once per bucket — one launch instead of hundreds, which is most
// of a small-batch decode step's cost on a GPU.
//
// Which steps: every sequence decodes one token and samples, contexts within the fixed
// attention shape (max_context), the rank alone (a collective inside a graph would need the
// communicator's stream in it: TP > 1 runs eagerly), and the batch within the largest bucket.
// Anything else runs eagerly, as does a bucket whose capture failed (reported once in
// `failed()`). A bucket's first step also runs eagerly: it grows the kernels' scratch memory
// to that bucket's size, which a capture cannot allocate.
//
// Validity: a graph replays kernels on the addresses it saw. They are those of the weights,
// the workspace, the kernels' scratch and the KV cache; every step checks a key of all four
// (BufferAddressDigest, WorkspaceGeneration, ScratchGeneration, the cache's id) and
// drops every graph when one changed — except that a change of the weights alone (a commit or
// rollback switched weight sets, docs/weights.md) parks the old set's graphs and takes back the
// new set's when it served before, so switching back and forth captures nothing again. In-place
// reloads keep the weights' addresses, so graphs survive them.
#ifndef LOOM_WORKER_DECODE_GRAPHS_H_
#define LOOM_WORKER_DECODE_GRAPHS_H_

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <vector>

#include "absl/status/statusor.h"
#include "common/step.h"
#include "kernels/execution_context.h"
#include "worker/kv_cache.h"
#include "worker/model/decoder.h"

namespace loom {

struct DecodeGraphOptions {
  int64_t max_batch = 64;   // the scheduler's max_num_seqs: the largest bucket
  int64_t max_context = 0;  // the longest context a graph serves (the model's limit)
  bool single_rank = true;  // false: collectives in the step, graphs stay off
};

class DecodeGraphs {
 public:
  explicit DecodeGraphs(const DecodeGraphOptions& options);

  // 1, 2, 4, 8, then every 8 up to max_batch, and max_batch itself.
  static std::vector<int64_t> Buckets(int64_t max_batch);
  // The smallest bucket of at least `batch` sequences; 0 when there is none.
  int64_t BucketFor(int64_t batch) const;
  // Whether `step` may run from a graph (see above).
  bool Eligible(const StepInput& step) const;

  // Runs an eligible step: padded to its bucket, prepared, then replayed (captured first when
  // the bucket has no graph yet). Returns the logits of the step's own sequences
  // [b, vocab], rows in step order, like Decoder::Forward.
  absl::StatusOr<Tensor> Run(Decoder& decoder, KvCache& cache, const StepInput& step);

  int64_t captures() const { return captures_; }
  int64_t replays() const { return replays_; }
  int64_t invalidations() const { return invalidations_; }
  const std::set<int64_t>& failed() const { return failed_; }

 private:
  struct Key {
    uint64_t weights = 0, workspace = 0, scratch = 0, cache = 0;
    bool operator==(const Key&) const = default;
  };
  // The step padded to `bucket` sequences of one token each.
  static StepInput Pad(const StepInput& step, int64_t bucket);

  DecodeGraphOptions options_;
  std::vector<int64_t> buckets_;
  Key key_;
  struct Captured {
    std::unique_ptr<kernels::DeviceGraph> graph;
    Tensor logits;  // where the graph writes its output (a view of the workspace)
  };
  std::map<int64_t, Captured> graphs_;  // of the weight set serving (key_.weights)
  std::set<int64_t> warmed_;  // buckets that ran once eagerly since the last invalidation
  // The graphs of the set that served before the last switch, kept for a switch back.
  struct Parked {
    std::map<int64_t, Captured> graphs;
    std::set<int64_t> warmed;
  };
  std::map<uint64_t, Parked> parked_;  // by weights digest; one entry at most
  std::set<int64_t> failed_;  // buckets whose capture failed: eager for good
  int64_t captures_ = 0, replays_ = 0, invalidations_ = 0;
  absl::StatusOr<Tensor> recorded_;  // what the capture's recording returned
};

}  // namespace loom

#endif  // LOOM_WORKER_DECODE_GRAPHS_H_
