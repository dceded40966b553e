// The Unicode character classes HF `tokenizers` asks Rust about, answered by ICU.
#ifndef LOOM_CONTROLLER_TOKENIZER_UNICODE_PROPS_H_
#define LOOM_CONTROLLER_TOKENIZER_UNICODE_PROPS_H_

namespace loom::tokenizer {

bool IsWhitespace(char32_t c);   // Rust char::is_whitespace (White_Space)
bool IsNumeric(char32_t c);      // Rust char::is_numeric (Nd, Nl, No)
bool IsWordChar(char32_t c);     // the Rust regex crate's \w
bool IsPunctuation(char32_t c);  // HF's is_punc: ASCII punctuation or any P* category
bool IsMark(char32_t c);         // general category M (Mn, Mc, Me)

}  // namespace loom::tokenizer

#endif  // LOOM_CONTROLLER_TOKENIZER_UNICODE_PROPS_H_
