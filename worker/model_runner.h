// ModelRunner: one worker's model, KV cache and sampler, executing steps.
#ifndef LOOM_WORKER_MODEL_RUNNER_H_
#define LOOM_WORKER_MODEL_RUNNER_H_

#include <memory>

#include "absl/status/statusor.h"
#include "common/step.h"
#include "worker/decode_graphs.h"
#include "worker/kv_cache.h"
#include "worker/model/decoder.h"

namespace loom {

struct ModelRunnerOptions {
  DecoderOptions decoder;
  int64_t block_size = 16;
  int64_t kv_cache_bytes = int64_t{1} << 30;
  int64_t kv_cache_blocks = 0;  // > 0: exactly this many blocks, whatever kv_cache_bytes says
  // Decode steps from device graphs where the context has them (decode_graphs.h); off with
  // --enforce-eager. max_batch and max_context size the buckets and the attention shape.
  bool decode_graphs = true;
  int64_t graph_max_batch = 64;
  int64_t graph_max_context = 0;  // 0: the model's limit
};

class ModelRunner {
 public:
  // Builds the decoder (weights unloaded: load them through decoder()) and the KV cache.
  static absl::StatusOr<std::unique_ptr<ModelRunner>> Create(const ModelConfig& config,
                                                             const ModelRunnerOptions& options);

  Decoder& decoder() { return *decoder_; }
  int64_t num_kv_blocks() const { return cache_.num_blocks(); }
  int64_t block_size() const { return cache_.shape().block_size; }
  const KvCache& kv_cache() const { return cache_; }
  // Null where decode steps run eagerly (the host, TP > 1, --enforce-eager).
  const DecodeGraphs* decode_graphs() const { return graphs_.get(); }

  // Replaces the KV cache by one of as many blocks as `bytes` holds (its contents go: only
  // before serving). On error the old cache stays.
  absl::Status ResizeKvCache(int64_t bytes);
  // A sleep: frees the KV cache (steps are refused until it is back), returning its bytes.
  int64_t FreeKvCache();
  // A wake: a KV cache of `bytes` (zeroed, at new addresses) in its place.
  absl::Status RestoreKvCache(int64_t bytes);

  // Validates the step against the cache (block ids, table coverage) and runs it.
  absl::StatusOr<StepOutput> Execute(const StepInput& step);

 private:
  std::unique_ptr<Decoder> decoder_;
  KvCache cache_;
  KvCacheShape shape_;  // the cache's, kept while FreeKvCache left none
  std::unique_ptr<DecodeGraphs> graphs_;
};

}  // namespace loom

#endif  // LOOM_WORKER_MODEL_RUNNER_H_
