// The paged KV cache of one worker: per layer, K and V tensors [num_blocks, block_size, Hk, D].
#ifndef LOOM_WORKER_KV_CACHE_H_
#define LOOM_WORKER_KV_CACHE_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "common/tensor.h"
#include "kernels/execution_context.h"

namespace loom {

struct KvCacheShape {
  int64_t num_layers = 0;
  int64_t block_size = 16;
  int64_t num_kv_heads = 0;  // on this rank
  int64_t head_dim = 0;
  // Bytes of K plus V for one block across all layers.
  int64_t BytesPerBlock() const { return 2 * num_layers * block_size * num_kv_heads * head_dim * 4; }
};

class KvCache {
 public:
  // Allocates as many whole blocks as fit in `memory_budget_bytes` on the context's device; at
  // least one, or an error.
  static absl::StatusOr<KvCache> Create(const KvCacheShape& shape, int64_t memory_budget_bytes,
                                        kernels::ExecutionContext& context);

  int64_t num_blocks() const { return num_blocks_; }
  const KvCacheShape& shape() const { return shape_; }
  Tensor& k(int64_t layer) { return k_[layer]; }
  Tensor& v(int64_t layer) { return v_[layer]; }
  int64_t nbytes() const { return num_blocks_ * shape_.BytesPerBlock(); }
  // Unique to each cache Create made (0: none), so a new cache is told from an old one even
  // where the allocator hands back the same addresses.
  uint64_t id() const { return id_; }

 private:
  KvCacheShape shape_;
  int64_t num_blocks_ = 0;
  uint64_t id_ = 0;
  std::vector<Tensor> k_, v_;
};

}  // namespace loom

#endif  // LOOM_WORKER_KV_CACHE_H_
