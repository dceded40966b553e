// A small, complete byte-level BPE tokenizer.json for tests that must not depend on fixtures:
// the 256 byte tokens, a few merges, two special tokens. Tests edit its JSON to build
// malformed and unsupported variants.
#ifndef LOOM_TESTS_TOKENIZER_TINY_TOKENIZER_JSON_H_
#define LOOM_TESTS_TOKENIZER_TINY_TOKENIZER_JSON_H_

#include "nlohmann/json.hpp"

namespace loom::testing {

// ids: 0..255 bytes (GPT-2 alphabet), then merges' results, then <|bos|>, <|eos|> (special).
nlohmann::json TinyTokenizerJson();

}  // namespace loom::testing

#endif  // LOOM_TESTS_TOKENIZER_TINY_TOKENIZER_JSON_H_
