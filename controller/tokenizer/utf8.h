// UTF-8 helpers shared by the tokenizer stages.
//
// The HF pipeline works on Rust strings, which are always valid UTF-8; Loom validates once at
// the API boundary and every stage after that may assume well-formed input.
#ifndef LOOM_CONTROLLER_TOKENIZER_UTF8_H_
#define LOOM_CONTROLLER_TOKENIZER_UTF8_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace loom::tokenizer {

// Byte offset of the first byte that does not start a well-formed UTF-8 sequence (overlong
// forms, surrogates and code points above U+10FFFF are ill-formed), or npos when valid.
size_t FindInvalidUtf8(std::string_view text);

// Length of the sequence that starts with `lead` in well-formed UTF-8 (1 to 4).
inline size_t Utf8SequenceLength(uint8_t lead) {
  if (lead < 0x80) return 1;
  if (lead < 0xE0) return 2;
  if (lead < 0xF0) return 3;
  return 4;
}

// Decodes the code point at `text[pos]` of well-formed UTF-8 and advances `pos` past it.
char32_t NextCodePoint(std::string_view text, size_t& pos);

// The code point that ends at `end` (exclusive) in well-formed UTF-8, and its start in `start`.
char32_t PreviousCodePoint(std::string_view text, size_t end, size_t& start);

void AppendUtf8(char32_t code_point, std::string& out);

// Rust's String::from_utf8_lossy: each maximal ill-formed subpart becomes one U+FFFD.
std::string Utf8Lossy(std::string_view bytes);

// True when `text` ends with U+FFFD, the mark of a byte sequence still waiting for its tail.
bool EndsWithReplacementChar(std::string_view text);

}  // namespace loom::tokenizer

#endif  // LOOM_CONTROLLER_TOKENIZER_UTF8_H_
