// Added tokens of tokenizer.json ("added_tokens"): strings such as "<|im_end|>" that are cut
// out of the text before the model sees it.
//
// As in HF `tokenizers`: tokens with normalized=false are found in the raw text first; the
// remaining pieces are then normalized and searched for the tokens with normalized=true
// (whose patterns are their own normalized content). Matching is leftmost-longest;
// single_word rejects a match touching a word character, lstrip/rstrip swallow the
// whitespace beside a match (the swallowed spaces become part of the token's piece).
#ifndef LOOM_CONTROLLER_TOKENIZER_ADDED_VOCABULARY_H_
#define LOOM_CONTROLLER_TOKENIZER_ADDED_VOCABULARY_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "controller/tokenizer/normalizer.h"

namespace loom::tokenizer {

struct AddedToken {
  std::string content;
  int32_t id = 0;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = false;
  bool special = false;
};

// A piece of the input: either an added token's id, or text for the model.
struct TextPiece {
  std::string text;
  int32_t token_id = -1;       // >= 0 for an added token
  bool at_text_start = false;  // begins at offset 0 of the original text
};

// Leftmost-longest search over a set of byte strings (a byte trie; sets are small).
class TokenMatcher {
 public:
  void Add(const std::string& pattern, int32_t token_index);
  bool empty() const { return nodes_.size() <= 1; }
  // Non-overlapping leftmost-longest matches: (begin, end, token_index).
  struct Match {
    size_t begin, end;
    int32_t token_index;
  };
  std::vector<Match> FindAll(std::string_view text) const;

 private:
  struct Node {
    std::vector<std::pair<uint8_t, int32_t>> children;
    int32_t token_index = -1;
  };
  std::vector<Node> nodes_ = std::vector<Node>(1);
  bool first_byte_[256] = {};
};

class AddedVocabulary {
 public:
  // `normalizer` (may be null) is the tokenizer's, used for the patterns of normalized tokens.
  AddedVocabulary(std::vector<AddedToken> tokens, const Normalizer* normalizer);

  // Splits `text` into added tokens and normalized text pieces (no empty pieces).
  std::vector<TextPiece> Split(std::string_view text, const Normalizer* normalizer) const;

  const std::vector<AddedToken>& tokens() const { return tokens_; }

 private:
  // HF's find_matches + split_with_indices for one matcher over one piece.
  void SplitPiece(const TextPiece& piece, const TokenMatcher& matcher,
                  std::vector<TextPiece>& out) const;

  std::vector<AddedToken> tokens_;
  TokenMatcher raw_matcher_;         // normalized=false tokens
  TokenMatcher normalized_matcher_;  // normalized=true tokens, by normalized content
};

}  // namespace loom::tokenizer

#endif  // LOOM_CONTROLLER_TOKENIZER_ADDED_VOCABULARY_H_
