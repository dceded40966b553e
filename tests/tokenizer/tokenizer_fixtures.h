// Access to the reference tokenizers of tests/data/tokenizers (see its README): the shared
// tokenizer.json files, the llama2 patch and the overlay files, assembled into a full
// tokenizer.json in a temp dir and loaded through Tokenizer::FromFile like any real file.
#ifndef LOOM_TESTS_TOKENIZER_TOKENIZER_FIXTURES_H_
#define LOOM_TESTS_TOKENIZER_TOKENIZER_FIXTURES_H_

#include <string>
#include <vector>

#include "controller/tokenizer/tokenizer.h"
#include "nlohmann/json.hpp"

namespace loom::testing {

// The tokenizers with reference outputs.
const std::vector<std::string>& FixtureTokenizerNames();

// True when ../shared/fixtures exists (tests skip otherwise).
bool SharedFixturesPresent();

std::string TokenizerDataDir();  // tests/data/tokenizers

// The tokenizer.json of `name`: a fixture file, or one assembled into a fresh temp dir (which
// FixtureTokenizer removes after loading it).
std::string FixtureTokenizerJsonPath(const std::string& name);

// Loaded once per process; ADD_FAILURE and nullptr when loading fails.
const tokenizer::Tokenizer* FixtureTokenizer(const std::string& name);

// Parses a JSON file; a discarded value when unreadable.
nlohmann::json ReadJsonFile(const std::string& path);
std::string ReadTextFile(const std::string& path);

}  // namespace loom::testing

#endif  // LOOM_TESTS_TOKENIZER_TOKENIZER_FIXTURES_H_
