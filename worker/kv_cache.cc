#include "worker/kv_cache.h"

#include <atomic>

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace loom {

absl::StatusOr<KvCache> KvCache::Create(const KvCacheShape& shape, int64_t memory_budget_bytes,
                                        kernels::ExecutionContext& context) {
  if (shape.num_layers <= 0 || shape.block_size <= 0 || shape.num_kv_heads <= 0 ||
      shape.head_dim <= 0) {
    return absl::InvalidArgumentError("KV cache shape must be positive in every dimension");
  }
  const int64_t per_block = shape.BytesPerBlock();
  const int64_t blocks = memory_budget_bytes / per_block;
  if (blocks < 1) {
    return absl::InvalidArgumentError(absl::StrCat("KV cache budget of ", memory_budget_bytes,
                                                   " bytes holds no block (one block needs ",
                                                   per_block, " bytes)"));
  }
  KvCache cache;
  cache.shape_ = shape;
  cache.num_blocks_ = blocks;
  static std::atomic<uint64_t> next_id{0};
  cache.id_ = ++next_id;
  for (int64_t l = 0; l < shape.num_layers; ++l) {
    std::vector<int64_t> dims = {blocks, shape.block_size, shape.num_kv_heads, shape.head_dim};
    LOOM_ASSIGN_OR_RETURN(Tensor k, context.Allocate(DType::kF32, dims));
    LOOM_ASSIGN_OR_RETURN(Tensor v, context.Allocate(DType::kF32, dims));
    cache.k_.push_back(std::move(k));
    cache.v_.push_back(std::move(v));
  }
  return cache;
}

}  // namespace loom
