// KV-cache block bookkeeping: which physical blocks are free, and each sequence's block table.
//
// The controller owns this; workers only see block ids. Blocks are fixed-size groups of token
// slots in every layer's K and V cache. Not thread-safe: the scheduler thread owns it.
#ifndef LOOM_CONTROLLER_BLOCK_MANAGER_H_
#define LOOM_CONTROLLER_BLOCK_MANAGER_H_

#include <cstdint>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"

namespace loom {

class BlockManager {
 public:
  BlockManager(int64_t num_blocks, int64_t block_size);

  int64_t num_blocks() const { return num_blocks_; }
  int64_t block_size() const { return block_size_; }
  int64_t num_free_blocks() const { return static_cast<int64_t>(free_.size()); }

  // Blocks needed to hold `num_tokens` token slots.
  int64_t BlocksFor(int64_t num_tokens) const { return (num_tokens + block_size_ - 1) / block_size_; }

  // True when sequence `seq_id` can grow to `num_tokens` slots with the free blocks left.
  bool CanGrow(int64_t seq_id, int64_t num_tokens) const;
  // Grows (or creates) `seq_id`'s table to cover `num_tokens` slots. ResourceExhausted, with
  // nothing changed, when there are not enough free blocks.
  absl::Status Grow(int64_t seq_id, int64_t num_tokens);
  // Returns all of `seq_id`'s blocks to the free list. Unknown ids are ignored.
  void Free(int64_t seq_id);

  // The block table of a sequence (empty when unknown).
  const std::vector<int32_t>& BlockTable(int64_t seq_id) const;

 private:
  int64_t num_blocks_;
  int64_t block_size_;
  std::vector<int32_t> free_;  // a stack: the most recently freed block is reused first
  absl::flat_hash_map<int64_t, std::vector<int32_t>> tables_;
};

}  // namespace loom

#endif  // LOOM_CONTROLLER_BLOCK_MANAGER_H_
