// Deterministic random inputs for the fuzz and streaming tests.
#ifndef LOOM_TESTS_TOKENIZER_RANDOM_TEXT_H_
#define LOOM_TESTS_TOKENIZER_RANDOM_TEXT_H_

#include <random>
#include <string>

namespace loom::testing {

// Arbitrary bytes: often invalid UTF-8.
std::string RandomBytes(std::mt19937& rng, size_t max_len);

// Valid UTF-8 mixing ASCII words, spaces/newlines, digits, Latin, CJK, emoji, combining marks
// and fragments of special-token spellings.
std::string RandomText(std::mt19937& rng, size_t max_pieces);

}  // namespace loom::testing

#endif  // LOOM_TESTS_TOKENIZER_RANDOM_TEXT_H_
