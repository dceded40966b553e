#include "controller/block_manager.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/splitmix64.h"

namespace loom {

BlockManager::BlockManager(int64_t num_blocks, int64_t block_size, bool prefix_caching)
    : num_blocks_(num_blocks),
      block_size_(block_size),
      prefix_caching_(prefix_caching),
      blocks_(static_cast<size_t>(num_blocks)) {
  free_.reserve(num_blocks);
  for (int64_t b = num_blocks - 1; b >= 0; --b) free_.push_back(static_cast<int32_t>(b));
}

uint64_t BlockManager::Hash(uint64_t parent, const int32_t* tokens) const {
  uint64_t h = SplitMix64(parent ^ SplitMix64(salt_ + 0x9e3779b97f4a7c15ull));
  for (int64_t i = 0; i < block_size_; ++i) {
    h = SplitMix64(h ^ static_cast<uint32_t>(tokens[i]));
  }
  return h == 0 ? 1 : h;  // 0 is "no parent"
}

bool BlockManager::CanGrow(int64_t seq_id, int64_t num_tokens) const {
  auto it = tables_.find(seq_id);
  int64_t have = it == tables_.end() ? 0 : static_cast<int64_t>(it->second.size());
  return BlocksFor(num_tokens) - have <= num_free_blocks();
}

void BlockManager::Uncache(int32_t b) {
  Block& block = blocks_[b];
  if (!block.cached) return;
  auto it = cache_.find(block.hash);
  if (it != cache_.end() && it->second == b) cache_.erase(it);
  block.cached = false;
  block.tokens.clear();
}

void BlockManager::ResetPrefixCache() {
  for (int32_t b : evictable_) {
    Uncache(b);
    free_.push_back(b);
  }
  evictable_.clear();
  // Held blocks stay with their sequences, uncached; a later match stops at the first block.
  for (int32_t b = 0; b < static_cast<int32_t>(blocks_.size()); ++b) Uncache(b);
}

int32_t BlockManager::TakeFree() {
  int32_t b;
  if (!free_.empty()) {
    b = free_.back();
    free_.pop_back();
  } else {
    // Evict the cached block freed longest ago.
    b = evictable_.front();
    evictable_.pop_front();
    Uncache(b);
  }
  blocks_[b].refs = 1;
  return b;
}

void BlockManager::Hold(int32_t b) {
  Block& block = blocks_[b];
  if (block.refs == 0 && block.cached) evictable_.erase(block.lru);
  ++block.refs;
}

absl::Status BlockManager::Grow(int64_t seq_id, int64_t num_tokens) {
  if (!CanGrow(seq_id, num_tokens)) {
    return absl::ResourceExhaustedError(absl::StrCat("KV cache full: sequence ", seq_id, " needs ",
                                                     BlocksFor(num_tokens), " blocks, ",
                                                     num_free_blocks(), " free"));
  }
  std::vector<int32_t>& table = tables_[seq_id];
  while (static_cast<int64_t>(table.size()) < BlocksFor(num_tokens)) table.push_back(TakeFree());
  return absl::OkStatus();
}

void BlockManager::Free(int64_t seq_id) {
  chains_.erase(seq_id);
  auto it = tables_.find(seq_id);
  if (it == tables_.end()) return;
  // Last blocks first, so a prompt's head is evicted last.
  for (auto b = it->second.rbegin(); b != it->second.rend(); ++b) {
    Block& block = blocks_[*b];
    if (--block.refs > 0) continue;
    if (block.cached) {
      block.lru = evictable_.insert(evictable_.end(), *b);
    } else {
      free_.push_back(*b);
    }
  }
  tables_.erase(it);
}

const std::vector<int32_t>& BlockManager::BlockTable(int64_t seq_id) const {
  static const std::vector<int32_t> kEmpty;
  auto it = tables_.find(seq_id);
  return it == tables_.end() ? kEmpty : it->second;
}

int64_t BlockManager::MatchPrefix(int64_t seq_id, const std::vector<int32_t>& tokens,
                                  int64_t max_tokens) {
  if (!prefix_caching_ || tables_.contains(seq_id)) return 0;
  const int64_t full = std::min<int64_t>(static_cast<int64_t>(tokens.size()), max_tokens) /
                       block_size_;
  prefix_queries_ += full * block_size_;
  std::vector<int32_t> table;
  std::vector<uint64_t> chain;
  uint64_t parent = 0;
  for (int64_t i = 0; i < full; ++i) {
    const int32_t* t = tokens.data() + i * block_size_;
    const uint64_t h = Hash(parent, t);
    auto it = cache_.find(h);
    if (it == cache_.end()) break;
    const Block& block = blocks_[it->second];
    // The hash found a candidate; the chain, salt and tokens decide.
    if (block.parent != parent || block.salt != salt_ ||
        !std::equal(block.tokens.begin(), block.tokens.end(), t)) {
      break;
    }
    Hold(it->second);
    table.push_back(it->second);
    chain.push_back(h);
    parent = h;
  }
  if (table.empty()) return 0;
  prefix_hits_ += static_cast<int64_t>(table.size()) * block_size_;
  tables_[seq_id] = std::move(table);
  chains_[seq_id] = std::move(chain);
  return static_cast<int64_t>(chains_[seq_id].size()) * block_size_;
}

void BlockManager::Publish(int64_t seq_id, const std::vector<int32_t>& tokens,
                           int64_t num_computed) {
  if (!prefix_caching_) return;
  auto table = tables_.find(seq_id);
  if (table == tables_.end()) return;
  std::vector<uint64_t>& chain = chains_[seq_id];
  const int64_t full = std::min<int64_t>(num_computed, static_cast<int64_t>(tokens.size())) /
                       block_size_;
  for (int64_t i = static_cast<int64_t>(chain.size());
       i < full && i < static_cast<int64_t>(table->second.size()); ++i) {
    const uint64_t parent = chain.empty() ? 0 : chain.back();
    const int32_t* t = tokens.data() + i * block_size_;
    const uint64_t h = Hash(parent, t);
    chain.push_back(h);
    const int32_t b = table->second[i];
    Block& block = blocks_[b];
    // Another sequence may have published the same contents first: keep theirs, ours stays
    // private (and is reused as a plain free block once released).
    if (block.cached || cache_.contains(h)) continue;
    block.cached = true;
    block.hash = h;
    block.parent = parent;
    block.salt = salt_;
    block.tokens.assign(t, t + block_size_);
    cache_[h] = b;
  }
}

}  // namespace loom
