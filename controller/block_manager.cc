#include "controller/block_manager.h"

#include "absl/strings/str_cat.h"

namespace loom {

BlockManager::BlockManager(int64_t num_blocks, int64_t block_size)
    : num_blocks_(num_blocks), block_size_(block_size) {
  free_.reserve(num_blocks);
  for (int64_t b = num_blocks - 1; b >= 0; --b) free_.push_back(static_cast<int32_t>(b));
}

bool BlockManager::CanGrow(int64_t seq_id, int64_t num_tokens) const {
  auto it = tables_.find(seq_id);
  int64_t have = it == tables_.end() ? 0 : static_cast<int64_t>(it->second.size());
  return BlocksFor(num_tokens) - have <= num_free_blocks();
}

absl::Status BlockManager::Grow(int64_t seq_id, int64_t num_tokens) {
  if (!CanGrow(seq_id, num_tokens)) {
    return absl::ResourceExhaustedError(absl::StrCat("KV cache full: sequence ", seq_id, " needs ",
                                                     BlocksFor(num_tokens), " blocks, ",
                                                     num_free_blocks(), " free"));
  }
  std::vector<int32_t>& table = tables_[seq_id];
  while (static_cast<int64_t>(table.size()) < BlocksFor(num_tokens)) {
    table.push_back(free_.back());
    free_.pop_back();
  }
  return absl::OkStatus();
}

void BlockManager::Free(int64_t seq_id) {
  auto it = tables_.find(seq_id);
  if (it == tables_.end()) return;
  for (auto b = it->second.rbegin(); b != it->second.rend(); ++b) free_.push_back(*b);
  tables_.erase(it);
}

const std::vector<int32_t>& BlockManager::BlockTable(int64_t seq_id) const {
  static const std::vector<int32_t> kEmpty;
  auto it = tables_.find(seq_id);
  return it == tables_.end() ? kEmpty : it->second;
}

}  // namespace loom
