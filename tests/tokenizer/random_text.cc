#include "tests/tokenizer/random_text.h"

#include <vector>

#include "controller/tokenizer/utf8.h"

namespace loom::testing {

std::string RandomBytes(std::mt19937& rng, size_t max_len) {
  std::string out(rng() % (max_len + 1), '\0');
  for (char& c : out) c = static_cast<char>(rng() & 0xFF);
  return out;
}

std::string RandomText(std::mt19937& rng, size_t max_pieces) {
  static const std::vector<std::string> kPieces = {"the",
                                                   " quick",
                                                   " brown",
                                                   "fox",
                                                   " ",
                                                   "  ",
                                                   "\n",
                                                   "\n\n",
                                                   "\t",
                                                   "\r\n",
                                                   "123",
                                                   "4",
                                                   "'s",
                                                   "'LL",
                                                   "é",
                                                   "e\xCC\x81",
                                                   "ß",
                                                   "你好",
                                                   "世界",
                                                   "こんにちは",
                                                   "😀",
                                                   "👍🏽",
                                                   "🇫🇷",
                                                   "\xC2\xA0",
                                                   "\xE3\x80\x80",
                                                   "<s>",
                                                   "</s>",
                                                   "<|endoftext|>",
                                                   "<|im_start|>",
                                                   "<|im_end|>",
                                                   "<|begin_of_text|>",
                                                   "<|eot_id|>",
                                                   "<|end|>",
                                                   "<think>",
                                                   "<",
                                                   "|",
                                                   ">",
                                                   "▁",
                                                   "Ġ",
                                                   "ﬁ",
                                                   "Ω",
                                                   "Σ",
                                                   "\xD8\xB3\xD9\x84\xD8\xA7\xD9\x85",
                                                   "क्षि",
                                                   "ไทย",
                                                   ".",
                                                   "!?",
                                                   "{}",
                                                   "_"};
  std::string out;
  const size_t n = rng() % (max_pieces + 1);
  for (size_t i = 0; i < n; ++i) {
    if (rng() % 5 == 0) {
      // Any code point except surrogates.
      char32_t cp;
      do {
        cp = rng() % 4 == 0 ? rng() % 0x110000 : rng() % 0x3000;
      } while ((cp >= 0xD800 && cp <= 0xDFFF) || cp == 0);
      tokenizer::AppendUtf8(cp, out);
    } else {
      out += kPieces[rng() % kPieces.size()];
    }
  }
  return out;
}

}  // namespace loom::testing
