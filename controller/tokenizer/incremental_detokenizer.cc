#include "controller/tokenizer/incremental_detokenizer.h"

#include <span>

#include "common/status.h"
#include "controller/tokenizer/utf8.h"

namespace loom::tokenizer {

IncrementalDetokenizer::IncrementalDetokenizer(const Tokenizer* tokenizer, bool skip_special_tokens)
    : tokenizer_(tokenizer), skip_special_tokens_(skip_special_tokens) {}

absl::StatusOr<std::string> IncrementalDetokenizer::Next(int32_t id) {
  if (!tokenizer_->IdToToken(id).has_value()) {
    return absl::NotFoundError(absl::StrCat("unknown token id ", id));
  }
  ids_.push_back(id);
  // A later byte can turn an already valid byte run into U+FFFDs (HF's ByteFallback judges
  // the run as a whole), so nothing is final until the run ends.
  if (tokenizer_->IsByteFallbackToken(id)) return std::string();
  const std::span<const int32_t> all(ids_);
  LOOM_ASSIGN_OR_RETURN(
      const std::string prefix,
      tokenizer_->Decode(all.subspan(prefix_offset_, read_offset_ - prefix_offset_),
                         skip_special_tokens_));
  LOOM_ASSIGN_OR_RETURN(const std::string text,
                        tokenizer_->Decode(all.subspan(prefix_offset_), skip_special_tokens_));
  // Hold back while the new text is not longer, still ends in an unfinished character, or
  // rewrote the window's text (then more context is needed before anything is final).
  if (text.size() <= prefix.size() || EndsWithReplacementChar(text) ||
      text.compare(0, prefix.size(), prefix) != 0) {
    return std::string();
  }
  prefix_offset_ = read_offset_;
  read_offset_ = ids_.size();
  emitted_bytes_ += text.size() - prefix.size();
  return text.substr(prefix.size());
}

absl::StatusOr<std::string> IncrementalDetokenizer::Flush() {
  LOOM_ASSIGN_OR_RETURN(const std::string full, tokenizer_->Decode(ids_, skip_special_tokens_));
  prefix_offset_ = read_offset_ = ids_.size();
  if (emitted_bytes_ >= full.size()) return std::string();
  std::string rest = full.substr(emitted_bytes_);
  emitted_bytes_ = full.size();
  return rest;
}

}  // namespace loom::tokenizer
