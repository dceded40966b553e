#include "controller/tokenizer/byte_level_alphabet.h"

#include <array>

#include "controller/tokenizer/utf8.h"

namespace loom::tokenizer {
namespace {

struct Alphabet {
  std::array<std::string, 256> chars;  // byte -> UTF-8
  std::array<int16_t, 512> bytes;      // code point (all below U+0200) -> byte, or -1

  Alphabet() {
    bytes.fill(-1);
    int next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
      const char32_t cp = printable ? b : next++;
      AppendUtf8(cp, chars[b]);
      bytes[cp] = static_cast<int16_t>(b);
    }
  }
};

const Alphabet& GetAlphabet() {
  static const Alphabet* alphabet = new Alphabet();
  return *alphabet;
}

}  // namespace

std::string_view ByteToChars(uint8_t byte) { return GetAlphabet().chars[byte]; }

void AppendByteLevel(std::string_view bytes, std::string& out) {
  const Alphabet& alphabet = GetAlphabet();
  for (unsigned char b : bytes) out.append(alphabet.chars[b]);
}

int CharToByte(char32_t c) { return c < 512 ? GetAlphabet().bytes[c] : -1; }

}  // namespace loom::tokenizer
