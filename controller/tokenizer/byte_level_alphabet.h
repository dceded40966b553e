// GPT-2's byte <-> character table: every byte gets a printable character so that byte-level
// BPE vocabularies are plain strings (printable ASCII and Latin-1 map to themselves, the other
// bytes to U+0100 onwards, e.g. space -> 'Ġ').
#ifndef LOOM_CONTROLLER_TOKENIZER_BYTE_LEVEL_ALPHABET_H_
#define LOOM_CONTROLLER_TOKENIZER_BYTE_LEVEL_ALPHABET_H_

#include <cstdint>
#include <string>
#include <string_view>

namespace loom::tokenizer {

// The UTF-8 spelling of the character that stands for `byte`.
std::string_view ByteToChars(uint8_t byte);

// Appends the byte-level spelling of every byte of `bytes`.
void AppendByteLevel(std::string_view bytes, std::string& out);

// The byte that `c` stands for, or -1 when `c` is not in the table.
int CharToByte(char32_t c);

}  // namespace loom::tokenizer

#endif  // LOOM_CONTROLLER_TOKENIZER_BYTE_LEVEL_ALPHABET_H_
