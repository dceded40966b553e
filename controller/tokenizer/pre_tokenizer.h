// Pre-tokenizers of tokenizer.json: cut normalized text into the words the model encodes.
//
// Supported types: ByteLevel (GPT-2's regex, add_prefix_space, use_regex), Split (String or
// Regex pattern, every behavior, invert), Metaspace (replacement, prepend_scheme, split),
// Digits, Whitespace, WhitespaceSplit, Punctuation, CharDelimiterSplit, BertPreTokenizer and
// Sequence. Offsets are not tracked (Loom needs ids, not alignments) except the one bit HF's
// Metaspace "first" scheme reads: whether a piece starts the original text.
#ifndef LOOM_CONTROLLER_TOKENIZER_PRE_TOKENIZER_H_
#define LOOM_CONTROLLER_TOKENIZER_PRE_TOKENIZER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "controller/tokenizer/json_fields.h"

namespace loom::tokenizer {

struct PreToken {
  std::string text;
  bool at_text_start = false;  // begins at offset 0 of the text given to Encode
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Replaces each piece by its sub-pieces, in order; empty pieces are dropped.
  virtual void PreTokenize(std::vector<PreToken>& pieces) const = 0;
};

absl::StatusOr<std::unique_ptr<PreTokenizer>> ParsePreTokenizer(const Json& json,
                                                                const std::string& where);

}  // namespace loom::tokenizer

#endif  // LOOM_CONTROLLER_TOKENIZER_PRE_TOKENIZER_H_
