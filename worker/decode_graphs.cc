#include "worker/decode_graphs.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace loom {

DecodeGraphs::DecodeGraphs(const DecodeGraphOptions& options)
    : options_(options), buckets_(Buckets(options.max_batch)) {}

std::vector<int64_t> DecodeGraphs::Buckets(int64_t max_batch) {
  std::vector<int64_t> buckets;
  for (int64_t b : {1, 2, 4}) {
    if (b < max_batch) buckets.push_back(b);
  }
  for (int64_t b = 8; b < max_batch; b += 8) buckets.push_back(b);
  if (max_batch >= 1) buckets.push_back(max_batch);
  return buckets;
}

int64_t DecodeGraphs::BucketFor(int64_t batch) const {
  if (batch < 1) return 0;
  auto it = std::lower_bound(buckets_.begin(), buckets_.end(), batch);
  return it == buckets_.end() ? 0 : *it;
}

bool DecodeGraphs::Eligible(const StepInput& step) const {
  if (!options_.single_rank || options_.max_context < 1 || step.sequences.empty() ||
      BucketFor(static_cast<int64_t>(step.sequences.size())) == 0) {
    return false;
  }
  for (const SequenceStep& s : step.sequences) {
    if (s.token_ids.size() != 1 || !s.sample || s.padding ||
        int64_t{s.start_position} + 1 > options_.max_context) {
      return false;
    }
  }
  return true;
}

StepInput DecodeGraphs::Pad(const StepInput& step, int64_t bucket) {
  StepInput padded = step;
  // Padding attends to one key in a block every sequence table names, and writes nothing.
  const int32_t block = step.sequences.front().block_table.front();
  for (int64_t i = static_cast<int64_t>(step.sequences.size()); i < bucket; ++i) {
    SequenceStep s;
    s.seq_id = -1 - i;
    s.token_ids = {0};
    s.start_position = 0;
    s.block_table = {block};
    s.sample = true;
    s.padding = true;
    padded.sequences.push_back(std::move(s));
  }
  return padded;
}

absl::StatusOr<Tensor> DecodeGraphs::Run(Decoder& decoder, KvCache& cache, const StepInput& step) {
  const int64_t b = static_cast<int64_t>(step.sequences.size());
  const int64_t bucket = BucketFor(b);
  if (!Eligible(step)) return absl::InvalidArgumentError("step not eligible for a decode graph");
  kernels::ExecutionContext& context = decoder.context();
  const Key key{decoder.BufferAddressDigest(), decoder.WorkspaceGeneration(),
                context.ScratchGeneration(), cache.id()};
  if (key.weights != key_.weights && key.workspace == key_.workspace &&
      key.scratch == key_.scratch && key.cache == key_.cache) {
    // Another weight set (a commit or rollback switched sets): park this set's graphs, and
    // take back the new set's if it served before. One set is parked at most (a serving and a
    // kept or staged one).
    Parked mine{std::move(graphs_), std::move(warmed_)};
    graphs_.clear();
    warmed_.clear();
    auto back = parked_.find(key.weights);
    if (back != parked_.end()) {
      graphs_ = std::move(back->second.graphs);
      warmed_ = std::move(back->second.warmed);
      parked_.erase(back);
    }
    if (!parked_.empty()) ++invalidations_;
    parked_.clear();
    if (!mine.graphs.empty() || !mine.warmed.empty()) parked_.emplace(key_.weights, std::move(mine));
    key_.weights = key.weights;
  }
  if (!(key == key_)) {
    if (!graphs_.empty() || !warmed_.empty() || !parked_.empty()) ++invalidations_;
    graphs_.clear();
    warmed_.clear();
    parked_.clear();
    key_ = key;
  }
  LOOM_RETURN_IF_ERROR(decoder.Prepare(Pad(step, bucket), cache, options_.max_context));
  // Preparing may have grown the workspace (a first step of this size): key it again.
  if (decoder.WorkspaceGeneration() != key_.workspace) {
    if (!graphs_.empty() || !parked_.empty()) ++invalidations_;
    graphs_.clear();
    warmed_.clear();
    parked_.clear();
    key_.workspace = decoder.WorkspaceGeneration();
  }
  // A capture runs the recording with this object's output slot: it outlives the call.
  recorded_ = absl::UnknownError("not recorded");
  absl::StatusOr<Tensor> logits;
  auto it = graphs_.find(bucket);
  if (it == graphs_.end() && !failed_.contains(bucket) && warmed_.contains(bucket)) {
    absl::StatusOr<std::unique_ptr<kernels::DeviceGraph>> graph =
        context.CaptureGraph([this, &decoder, &cache]() -> absl::Status {
          recorded_ = decoder.Run(cache);
          return recorded_.status();
        });
    if (graph.ok() && recorded_.ok()) {
      ++captures_;
      it = graphs_.emplace(bucket, Captured{std::move(*graph), *recorded_}).first;
    } else {
      failed_.insert(bucket);
    }
  }
  if (it != graphs_.end()) {
    // The graph's output is where its capture wrote it: the workspace's logits rows.
    LOOM_RETURN_IF_ERROR(context.ReplayGraph(*it->second.graph));
    ++replays_;
    logits = it->second.logits;
  } else {
    logits = decoder.Run(cache);
    warmed_.insert(bucket);
    // The eager run may have grown the kernels' scratch: what was captured before is stale.
    if (context.ScratchGeneration() != key_.scratch) {
      if (!graphs_.empty() || !parked_.empty()) ++invalidations_;
      graphs_.clear();
      parked_.clear();
      warmed_ = {bucket};
      key_.scratch = context.ScratchGeneration();
    }
  }
  if (!logits.ok()) return logits.status();
  return logits->Slice(0, 0, b);
}

}  // namespace loom
