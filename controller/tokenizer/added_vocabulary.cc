#include "controller/tokenizer/added_vocabulary.h"

#include <algorithm>
#include <utility>

#include "controller/tokenizer/unicode_props.h"
#include "controller/tokenizer/utf8.h"

namespace loom::tokenizer {
namespace {

bool EndsWithWordChar(std::string_view text) {
  if (text.empty()) return false;
  size_t start;
  return IsWordChar(PreviousCodePoint(text, text.size(), start));
}

bool StartsWithWordChar(std::string_view text) {
  if (text.empty()) return false;
  size_t pos = 0;
  return IsWordChar(NextCodePoint(text, pos));
}

// Start of the whitespace run that ends `text`.
size_t TrailingSpaceStart(std::string_view text) {
  size_t end = text.size();
  while (end > 0) {
    size_t start;
    if (!IsWhitespace(PreviousCodePoint(text, end, start))) break;
    end = start;
  }
  return end;
}

// Length of the whitespace run that starts `text`.
size_t LeadingSpaceLength(std::string_view text) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t next = pos;
    if (!IsWhitespace(NextCodePoint(text, next))) break;
    pos = next;
  }
  return pos;
}

}  // namespace

void TokenMatcher::Add(const std::string& pattern, int32_t token_index) {
  if (pattern.empty()) return;
  int32_t node = 0;
  for (unsigned char c : pattern) {
    auto& children = nodes_[node].children;
    auto it = std::find_if(children.begin(), children.end(),
                           [c](const auto& child) { return child.first == c; });
    if (it != children.end()) {
      node = it->second;
    } else {
      const int32_t next = static_cast<int32_t>(nodes_.size());
      nodes_[node].children.emplace_back(c, next);
      nodes_.emplace_back();
      node = next;
    }
  }
  // The first token with a given content wins, as the first pattern does in HF's automaton.
  if (nodes_[node].token_index < 0) nodes_[node].token_index = token_index;
  first_byte_[static_cast<unsigned char>(pattern[0])] = true;
}

std::vector<TokenMatcher::Match> TokenMatcher::FindAll(std::string_view text) const {
  std::vector<Match> matches;
  if (empty()) return matches;
  size_t pos = 0;
  while (pos < text.size()) {
    if (!first_byte_[static_cast<unsigned char>(text[pos])]) {
      ++pos;
      continue;
    }
    int32_t node = 0, best_token = -1;
    size_t best_end = 0;
    for (size_t i = pos; i < text.size(); ++i) {
      const auto& children = nodes_[node].children;
      const unsigned char c = static_cast<unsigned char>(text[i]);
      auto it = std::find_if(children.begin(), children.end(),
                             [c](const auto& child) { return child.first == c; });
      if (it == children.end()) break;
      node = it->second;
      if (nodes_[node].token_index >= 0) {
        best_token = nodes_[node].token_index;
        best_end = i + 1;
      }
    }
    if (best_token >= 0) {
      matches.push_back({pos, best_end, best_token});
      pos = best_end;
    } else {
      ++pos;
    }
  }
  return matches;
}

AddedVocabulary::AddedVocabulary(std::vector<AddedToken> tokens, const Normalizer* normalizer)
    : tokens_(std::move(tokens)) {
  for (size_t i = 0; i < tokens_.size(); ++i) {
    const AddedToken& token = tokens_[i];
    if (!token.normalized) {
      raw_matcher_.Add(token.content, static_cast<int32_t>(i));
      continue;
    }
    std::string pattern = token.content;
    if (normalizer != nullptr) normalizer->Normalize(pattern);
    normalized_matcher_.Add(pattern, static_cast<int32_t>(i));
  }
}

void AddedVocabulary::SplitPiece(const TextPiece& piece, const TokenMatcher& matcher,
                                 std::vector<TextPiece>& out) const {
  const std::string_view text = piece.text;
  auto emit_text = [&](size_t begin, size_t end) {
    if (end <= begin) return;
    out.push_back(
        {std::string(text.substr(begin, end - begin)), -1, piece.at_text_start && begin == 0});
  };
  size_t done = 0;  // everything before this offset has been emitted
  for (const TokenMatcher::Match& match : matcher.FindAll(text)) {
    const AddedToken& token = tokens_[match.token_index];
    size_t begin = match.begin, end = match.end;
    if (token.single_word &&
        (EndsWithWordChar(text.substr(0, begin)) || StartsWithWordChar(text.substr(end)))) {
      continue;
    }
    // An earlier token may already have swallowed these spaces.
    if (token.lstrip) begin = std::max(TrailingSpaceStart(text.substr(0, begin)), done);
    if (token.rstrip) end += LeadingSpaceLength(text.substr(end));
    emit_text(done, begin);
    // HF's slice would clamp a range an earlier rstrip overran; never go backwards.
    begin = std::max(begin, done);
    if (end > begin || match.end > match.begin) {
      out.push_back({std::string(text.substr(begin, end - begin)), token.id,
                     piece.at_text_start && begin == 0});
    }
    done = std::max(done, end);
  }
  emit_text(done, text.size());
}

std::vector<TextPiece> AddedVocabulary::Split(std::string_view text,
                                              const Normalizer* normalizer) const {
  std::vector<TextPiece> pieces;
  TextPiece whole{std::string(text), -1, true};
  SplitPiece(whole, raw_matcher_, pieces);
  std::vector<TextPiece> out;
  out.reserve(pieces.size());
  for (TextPiece& piece : pieces) {
    if (piece.token_id >= 0) {
      out.push_back(std::move(piece));
      continue;
    }
    if (normalizer != nullptr) normalizer->Normalize(piece.text);
    if (piece.text.empty()) continue;
    SplitPiece(piece, normalized_matcher_, out);
  }
  return out;
}

}  // namespace loom::tokenizer
