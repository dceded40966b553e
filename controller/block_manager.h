// KV-cache block bookkeeping: which physical blocks are free, each sequence's block table, and
// the prefix cache — full blocks whose contents are known, shared between sequences.
//
// Prefix caching: a full block is known by a hash chain over (its parent block's hash, its token
// ids, a salt the owner sets to the serving weight version). A sequence that starts
// (MatchPrefix) takes every leading block of its tokens already cached, by reference count,
// and computes only the rest; blocks whose tokens a step completed are published (Publish).
// A block nobody holds stays cached, in least-recently-freed order, and is evicted only when a
// free block is needed and no uncached one is left. Tokens and salt are compared exactly on a
// hit (the hash only finds the candidate), so a collision can never serve wrong KV, and a new
// salt — a weight switch — can never find blocks computed by other weights.
//
// The controller owns this; workers only see block ids. Not thread-safe: the scheduler thread
// owns it.
#ifndef LOOM_CONTROLLER_BLOCK_MANAGER_H_
#define LOOM_CONTROLLER_BLOCK_MANAGER_H_

#include <cstdint>
#include <list>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"

namespace loom {

class BlockManager {
 public:
  BlockManager(int64_t num_blocks, int64_t block_size, bool prefix_caching = false);

  int64_t num_blocks() const { return num_blocks_; }
  int64_t block_size() const { return block_size_; }
  // Blocks a sequence can still get: unused ones and cached ones nobody holds.
  int64_t num_free_blocks() const {
    return static_cast<int64_t>(free_.size() + evictable_.size());
  }
  bool prefix_caching() const { return prefix_caching_; }

  // Blocks needed to hold `num_tokens` token slots.
  int64_t BlocksFor(int64_t num_tokens) const { return (num_tokens + block_size_ - 1) / block_size_; }

  // True when sequence `seq_id` can grow to `num_tokens` slots with the free blocks left.
  bool CanGrow(int64_t seq_id, int64_t num_tokens) const;
  // Grows (or creates) `seq_id`'s table to cover `num_tokens` slots. ResourceExhausted, with
  // nothing changed, when there are not enough free blocks.
  absl::Status Grow(int64_t seq_id, int64_t num_tokens);
  // Releases all of `seq_id`'s blocks (cached ones stay cached). Unknown ids are ignored.
  void Free(int64_t seq_id);

  // The block table of a sequence (empty when unknown).
  const std::vector<int32_t>& BlockTable(int64_t seq_id) const;

  // Prefix caching (no-ops without it). The salt keys every hash from now on.
  void SetSalt(uint64_t salt) { salt_ = salt; }
  // For a sequence with no blocks yet: takes the cached blocks that hold `tokens`' leading full
  // blocks, at most `max_tokens` tokens' worth, and returns how many tokens they hold.
  int64_t MatchPrefix(int64_t seq_id, const std::vector<int32_t>& tokens, int64_t max_tokens);
  // Publishes `seq_id`'s full blocks among the first `num_computed` of `tokens` (its prompt and
  // output so far) that are not cached yet.
  void Publish(int64_t seq_id, const std::vector<int32_t>& tokens, int64_t num_computed);

  // Forgets every cached block (held ones stay held, unheld ones become plain free blocks):
  // what the KV cache held is gone, as after a sleep freed it.
  void ResetPrefixCache();

  // Tokens MatchPrefix was asked about, and found cached, since the start.
  int64_t prefix_queries() const { return prefix_queries_; }
  int64_t prefix_hits() const { return prefix_hits_; }

 private:
  struct Block {
    int32_t refs = 0;
    bool cached = false;
    uint64_t hash = 0;
    uint64_t parent = 0, salt = 0;
    std::vector<int32_t> tokens;  // of a cached block: what the hash stands for
    std::list<int32_t>::iterator lru;  // in evictable_ while cached and unheld
  };
  uint64_t Hash(uint64_t parent, const int32_t* tokens) const;
  int32_t TakeFree();  // an unused block, or the least recently freed cached one
  void Hold(int32_t block);
  void Uncache(int32_t block);

  int64_t num_blocks_;
  int64_t block_size_;
  bool prefix_caching_;
  uint64_t salt_ = 0;
  std::vector<int32_t> free_;  // unused, a stack: the most recently freed is reused first
  std::list<int32_t> evictable_;  // cached and unheld, least recently freed first
  std::vector<Block> blocks_;
  absl::flat_hash_map<uint64_t, int32_t> cache_;  // hash -> block
  absl::flat_hash_map<int64_t, std::vector<int32_t>> tables_;
  // Per sequence: the hash chain of its leading blocks that are cached (or found cached).
  absl::flat_hash_map<int64_t, std::vector<uint64_t>> chains_;
  int64_t prefix_queries_ = 0, prefix_hits_ = 0;
};

}  // namespace loom

#endif  // LOOM_CONTROLLER_BLOCK_MANAGER_H_
