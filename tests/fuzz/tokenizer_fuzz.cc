// Fuzzes Tokenizer::FromJson: the input is a tokenizer.json's text. A tokenizer that loads must
// encode and decode without crashing whatever its components are: a few fixed texts are encoded
// (with and without special tokens) and their ids, and every id of the vocabulary, decoded.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "controller/tokenizer/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto tokenizer = loom::tokenizer::Tokenizer::FromJson(text, "tokenizer.json");
  if (!tokenizer.ok()) return 0;
  const loom::tokenizer::Tokenizer& t = **tokenizer;
  static const char* const kTexts[] = {
      "", " ", "Hello, world!", "  the   there\n\n\tthe", "<|bos|>x<|eos|>", "<s>[INST]</s>",
      "caf\xc3\xa9 \xe4\xb8\xad\xe6\x96\x87 \xf0\x9f\x98\x80 123456", "\xff\xfe invalid"};
  for (const char* s : kTexts) {
    for (bool special : {false, true}) {
      auto ids = t.Encode(s, special);
      if (!ids.ok()) continue;
      (void)t.Decode(*ids, /*skip_special_tokens=*/false);
      (void)t.Decode(*ids, /*skip_special_tokens=*/true);
    }
  }
  // Bounded: a fuzzed vocabulary may claim ids up to 2^31.
  std::vector<int32_t> all;
  for (int32_t id = -1; id <= t.vocab_size() && id < 4096; ++id) {
    all.push_back(id);
    (void)t.IdToToken(id);
    (void)t.IsSpecial(id);
    (void)t.IsByteFallbackToken(id);
    auto one = t.Decode(std::vector<int32_t>{id}, false);
    if (one.ok()) (void)t.TokenToId(*one);
  }
  (void)t.Decode(all, true);
  return 0;
}
