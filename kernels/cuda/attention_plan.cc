#include "kernels/cuda/attention_plan.h"

#include <algorithm>
#include <limits>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "kernels/checks.h"
#include "kernels/cuda/host_util.h"
#include "kernels/cuda/launch.h"

namespace loom::kernels::cuda {
namespace {

using internal::kAttentionChunk;
using internal::kAttentionMaxHeadDim;
using internal::kAttentionMaxQueries;
using internal::kTileFields;

constexpr int64_t kInt32Max = std::numeric_limits<int32_t>::max();
constexpr int64_t kMaxGridYZ = 65535;

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace

absl::StatusOr<PagedAttentionPlan> PagedAttentionPlan::Make(const AttentionBatch& batch,
                                                            const AttentionGeometry& geometry,
                                                            int64_t concurrent_blocks,
                                                            int64_t fixed_max_keys) {
  const AttentionGeometry& g = geometry;
  if (g.tokens < 0 || g.q_heads < 0 || g.head_dim < 0 || g.num_blocks < 0) {
    return absl::InvalidArgumentError("PagedAttention: negative dimension");
  }
  if (g.kv_heads <= 0 || g.block_size <= 0 || g.q_heads % g.kv_heads != 0 ||
      g.q_heads / g.kv_heads > 64) {
    return absl::InvalidArgumentError(
        absl::StrCat("PagedAttention: ", g.q_heads, " query heads cannot share ", g.kv_heads,
                     " KV heads (need a whole group of at most 64 query heads per KV head)"));
  }
  if (!internal::IsStorageType(g.cache_dtype)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "PagedAttention: caches must be F32, BF16 or F16, got ", DTypeName(g.cache_dtype)));
  }
  if (g.head_dim > kAttentionMaxHeadDim) {
    return absl::InvalidArgumentError(absl::StrCat("PagedAttention: head_dim ", g.head_dim,
                                                   " is over the CUDA kernel's ",
                                                   kAttentionMaxHeadDim));
  }
  if (g.tokens > kInt32Max || g.num_blocks * g.block_size > kInt32Max || g.q_heads > kInt32Max) {
    return absl::InvalidArgumentError(
        "PagedAttention: the CUDA kernel indexes rows and cache slots with 32-bit integers");
  }
  LOOM_RETURN_IF_ERROR(::loom::kernels::internal::CheckAttentionBatch(batch, g.tokens,
                                                                      g.num_blocks, g.block_size));

  PagedAttentionPlan plan;
  plan.geometry_ = g;
  const int64_t group = g.kv_heads > 0 && g.q_heads > 0 ? g.q_heads / g.kv_heads : 1;
  plan.heads_per_block_ = static_cast<int32_t>(std::min<int64_t>(group, kAttentionMaxQueries));
  plan.head_chunks_ = static_cast<int32_t>(CeilDiv(group, plan.heads_per_block_));
  plan.rows_per_tile_ = std::max(1, kAttentionMaxQueries / plan.heads_per_block_);

  const size_t sequences = batch.context_len.size();
  std::vector<int32_t> tiles;
  int64_t max_keys = 0, max_blocks = 1;
  for (size_t s = 0; s < sequences; ++s) {
    const int32_t first = batch.query_start[s], rows = batch.query_start[s + 1] - first;
    const int32_t first_position = batch.context_len[s] - rows;
    for (int32_t r = 0; r < rows; r += plan.rows_per_tile_) {
      const int32_t n = std::min(plan.rows_per_tile_, rows - r);
      tiles.insert(tiles.end(), {first + r, n, first_position + r, static_cast<int32_t>(s)});
      max_keys = std::max<int64_t>(max_keys, first_position + r + n);
    }
    max_blocks = std::max(max_blocks, CeilDiv(batch.context_len[s], g.block_size));
  }
  if (fixed_max_keys > 0) {
    if (max_keys > fixed_max_keys) {
      return absl::InvalidArgumentError(absl::StrCat("PagedAttention: a context of ", max_keys,
                                                     " keys is over the plan's fixed ",
                                                     fixed_max_keys));
    }
    max_keys = fixed_max_keys;
    max_blocks = CeilDiv(fixed_max_keys, g.block_size);
  }
  plan.num_tiles_ = static_cast<int32_t>(tiles.size() / kTileFields);
  plan.max_blocks_ = static_cast<int32_t>(max_blocks);
  const int64_t heads_blocks = g.kv_heads * plan.head_chunks_;
  if (heads_blocks > kMaxGridYZ) {
    return absl::InvalidArgumentError(
        absl::StrCat("PagedAttention: ", g.kv_heads, " KV heads are too many for one launch"));
  }

  // Split-K only when tiles × heads leave resident-block slots empty: as many partitions (of
  // whole key chunks) as fit the idle slots in the same wave. A second, partly filled wave
  // would cost more than it gains. The partials stay small: bounded by the slot count.
  const int64_t chunks = std::max<int64_t>(1, CeilDiv(max_keys, kAttentionChunk));
  const int64_t blocks = static_cast<int64_t>(plan.num_tiles_) * heads_blocks;
  int64_t parts = 1;
  if (blocks > 0 && blocks < concurrent_blocks) {
    parts = std::clamp<int64_t>(concurrent_blocks / blocks, 1, chunks);
  }
  const int64_t chunks_per_part = CeilDiv(chunks, parts);
  plan.partition_keys_ = static_cast<int32_t>(chunks_per_part * kAttentionChunk);
  plan.num_partitions_ =
      static_cast<int32_t>(std::max<int64_t>(1, CeilDiv(max_keys, plan.partition_keys_)));
  if (plan.num_partitions_ > kMaxGridYZ) {
    return absl::InvalidArgumentError("PagedAttention: context too long for one launch");
  }

  plan.tables_offset_ = tiles.size();
  plan.host_ = std::move(tiles);
  plan.host_.resize(plan.tables_offset_ + sequences * plan.max_blocks_, 0);
  for (size_t s = 0; s < sequences; ++s) {
    const int64_t needed = CeilDiv(batch.context_len[s], g.block_size);
    std::copy_n(batch.block_tables[s].begin(), needed,
                plan.host_.begin() + plan.tables_offset_ + s * plan.max_blocks_);
  }
  return plan;
}

absl::Status PagedAttentionPlan::Upload(DeviceContext& context, DeviceBuffer* persistent) {
  if (num_tiles_ == 0) return absl::OkStatus();
  const size_t bytes = device_bytes();
  DeviceBuffer* target = persistent != nullptr ? persistent : &device_;
  if (target->data() == nullptr || target->size() < bytes) {
    LOOM_ASSIGN_OR_RETURN(*target, DeviceBuffer::Allocate(context, bytes));
  }
  device_data_ = target->data();
  return context.Upload(host_.data(), bytes, target->data());
}

const int32_t* PagedAttentionPlan::device_tiles() const {
  return static_cast<const int32_t*>(device_data_);
}

const int32_t* PagedAttentionPlan::device_block_tables() const {
  return device_tiles() == nullptr ? nullptr : device_tiles() + tables_offset_;
}

size_t PagedAttentionPlan::partial_floats() const {
  if (num_partitions_ <= 1) return 0;
  return static_cast<size_t>(num_tiles_) * geometry_.kv_heads * head_chunks_ * num_partitions_ *
         kAttentionMaxQueries * (geometry_.head_dim + 2);
}

}  // namespace loom::kernels::cuda
