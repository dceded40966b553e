// The BPE model of HF `tokenizers`: a vocabulary, ranked merges, and the rules that turn one
// pre-token ("word") into ids.
//
// A word starts as one symbol per character (the character with continuing_subword_prefix /
// end_of_word_suffix where configured; unknown characters become <0xXX> byte tokens with
// byte_fallback, else the unk token, fused with a neighbouring unk when fuse_unk). Then the
// adjacent pair of lowest merge rank is merged, leftmost first, until no pair has a merge: the
// same order as HF's priority queue, so the ids are identical. With ignore_merges a word that
// is itself in the vocabulary is one id. Results for short words are cached because real text
// repeats its words.
//
// SentencePiece-style tokenizers have no pre-tokenizer, so a whole prompt is one "word". When
// no merge can produce a token with a "▁" after another character (checked at load time),
// BPE never merges across the start of a "▁" run, so the word is cut there and each piece is
// merged (and cached) alone: the same ids, at byte-level speed instead of one huge merge.
#ifndef LOOM_CONTROLLER_TOKENIZER_BPE_MODEL_H_
#define LOOM_CONTROLLER_TOKENIZER_BPE_MODEL_H_

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "controller/tokenizer/json_fields.h"

namespace loom::tokenizer {

class BpeModel {
 public:
  // `model` is tokenizer.json's "model" object (type "BPE").
  static absl::StatusOr<std::unique_ptr<BpeModel>> FromJson(const Json& model);

  // Appends the ids of one word. Fails only when a character needs the unk token and the
  // unk token is missing from the vocabulary (HF fails there too).
  absl::Status Tokenize(std::string_view word, std::vector<int32_t>& ids) const;

  std::optional<int32_t> TokenToId(std::string_view token) const;
  // nullptr when the model has no token with this id.
  const std::string* IdToToken(int32_t id) const;
  // One past the largest id of the vocabulary.
  int32_t id_limit() const { return static_cast<int32_t>(id_to_token_.size()); }

 private:
  struct Merge {
    int32_t rank;
    int32_t new_id;
  };
  // One symbol of a word being merged: a doubly linked list over a vector.
  struct Symbol {
    int32_t id;
    int32_t prev;
    int32_t next;
    bool alive;
  };

  BpeModel() = default;
  absl::Status LoadVocab(const Json& vocab);
  absl::Status LoadMerges(const Json& merges);
  absl::Status TokenizeSegment(std::string_view word, std::vector<int32_t>& ids) const;
  bool MergesNeverCrossMetaspace() const;
  absl::Status InitialSymbols(std::string_view word, std::vector<Symbol>& symbols) const;
  const Merge* FindMerge(int32_t left, int32_t right) const;
  void MergeAll(std::vector<Symbol>& symbols) const;

  static uint64_t PairKey(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) |
           static_cast<uint32_t>(right);
  }

  absl::flat_hash_map<std::string, int32_t> vocab_;
  std::vector<std::string> id_to_token_;
  std::vector<bool> has_id_;
  absl::flat_hash_map<uint64_t, Merge> merges_;
  std::optional<std::string> unk_token_;
  std::string continuing_subword_prefix_;
  std::string end_of_word_suffix_;
  bool fuse_unk_ = false;
  bool byte_fallback_ = false;
  bool ignore_merges_ = false;
  bool segment_at_metaspace_ = false;  // see the header comment
  int32_t byte_ids_[256];              // ids of <0x00>..<0xFF>, -1 where missing

  // Word -> ids for words short enough to repeat; guarded because Encode may run concurrently.
  static constexpr size_t kMaxCachedWordBytes = 64;
  static constexpr size_t kMaxCacheEntries = 200000;
  mutable std::mutex cache_mutex_;
  mutable absl::flat_hash_map<std::string, std::vector<int32_t>> cache_;
};

}  // namespace loom::tokenizer

#endif  // LOOM_CONTROLLER_TOKENIZER_BPE_MODEL_H_
