// How the CUDA paged-attention kernel divides a batch among thread blocks, decided on the host
// from the AttentionBatch metadata (which the CPU kernel also takes). Making a plan checks the
// batch exactly as the CPU kernel does; the plan is then uploaded once and may serve every
// layer of a step, since the batch is the same for all of them.
//
// The work: query rows are grouped into tiles (consecutive rows of one sequence), the query
// heads of each KV head into chunks of at most internal::kAttentionMaxQueries / rows, and when
// tiles × heads are too few to fill the device, each tile's key positions are split into
// partitions that are merged afterwards (split-K). See kernels/cuda/paged_attention.cu.
#ifndef LOOM_KERNELS_CUDA_ATTENTION_PLAN_H_
#define LOOM_KERNELS_CUDA_ATTENTION_PLAN_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/dtype.h"
#include "kernels/cuda/device_context.h"
#include "kernels/kernels.h"

namespace loom::kernels::cuda {

// What a plan is made for: q [tokens, q_heads, head_dim] and caches
// [num_blocks, block_size, kv_heads, head_dim] of `cache_dtype`.
struct AttentionGeometry {
  int64_t tokens = 0;
  int64_t q_heads = 0;
  int64_t kv_heads = 0;
  int64_t head_dim = 0;
  int64_t num_blocks = 0;
  int64_t block_size = 0;
  DType cache_dtype = DType::kF32;

  bool operator==(const AttentionGeometry&) const = default;
};

class PagedAttentionPlan {
 public:
  PagedAttentionPlan() = default;
  PagedAttentionPlan(PagedAttentionPlan&&) = default;
  PagedAttentionPlan& operator=(PagedAttentionPlan&&) = default;

  // Checks `batch` and the geometry (InvalidArgument with the CPU kernel's messages) and lays
  // out the work for a device that runs `concurrent_blocks` attention blocks at once (SMs ×
  // blocks per SM). Host only: needs no device.
  //
  // fixed_max_keys > 0 fixes the launch shape for contexts up to that many keys: block tables
  // as wide as fixed_max_keys needs and the split-K partitions chosen for it, so every batch of
  // the same token and tile counts launches the same grid with the same arguments, whatever its
  // contexts (partitions past a tile's context return at once) — what a captured device graph
  // replays. A context beyond fixed_max_keys is InvalidArgument.
  static absl::StatusOr<PagedAttentionPlan> Make(const AttentionBatch& batch,
                                                 const AttentionGeometry& geometry,
                                                 int64_t concurrent_blocks,
                                                 int64_t fixed_max_keys = 0);

  // Copies the tiles and block tables to the device (queued on the context's stream): into
  // memory of the plan's own, or into `persistent` (grown when too small), whose address then
  // stays the same from step to step (a graph's plan). `persistent` must outlive the plan.
  absl::Status Upload(DeviceContext& context, DeviceBuffer* persistent = nullptr);
  bool uploaded() const { return device_data_ != nullptr || num_tiles_ == 0; }
  // Bytes of device memory the upload takes.
  size_t device_bytes() const { return host_.size() * sizeof(int32_t); }

  const AttentionGeometry& geometry() const { return geometry_; }
  int32_t num_tiles() const { return num_tiles_; }
  int32_t rows_per_tile() const { return rows_per_tile_; }
  int32_t heads_per_block() const { return heads_per_block_; }
  int32_t head_chunks() const { return head_chunks_; }
  int32_t num_partitions() const { return num_partitions_; }
  int32_t partition_keys() const { return partition_keys_; }
  int32_t max_blocks() const { return max_blocks_; }
  // Per tile: first query row, row count, position of the first row, sequence.
  const int32_t* tiles() const { return host_.data(); }
  // [num_sequences][max_blocks], each table's entries past its context zero-filled.
  const int32_t* block_tables() const { return host_.data() + tables_offset_; }
  // The same on the device, once uploaded.
  const int32_t* device_tiles() const;
  const int32_t* device_block_tables() const;
  // Floats of scratch the partials need (0 with a single partition).
  size_t partial_floats() const;

 private:
  AttentionGeometry geometry_;
  int32_t num_tiles_ = 0;
  int32_t rows_per_tile_ = 1;
  int32_t heads_per_block_ = 1;
  int32_t head_chunks_ = 1;
  int32_t num_partitions_ = 1;
  int32_t partition_keys_ = 0;
  int32_t max_blocks_ = 1;
  size_t tables_offset_ = 0;
  std::vector<int32_t> host_;  // tiles, then block tables: one upload
  DeviceBuffer device_;
  const void* device_data_ = nullptr;  // device_'s, or the persistent buffer's
};

}  // namespace loom::kernels::cuda

#endif  // LOOM_KERNELS_CUDA_ATTENTION_PLAN_H_
