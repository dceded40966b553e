// Random inputs and random corruptions of a valid tokenizer.json: no crash, no hang, and every
// outcome is a value or a Status.
#include <random>
#include <string>
#include <vector>

#include "controller/tokenizer/tokenizer.h"
#include "controller/tokenizer/utf8.h"
#include "gtest/gtest.h"
#include "tests/tokenizer/random_text.h"
#include "tests/tokenizer/tiny_tokenizer_json.h"
#include "tests/test_paths.h"
#include "tests/tokenizer/tokenizer_fixtures.h"

namespace loom::tokenizer {
namespace {

using ::loom::testing::RandomBytes;
using ::loom::testing::RandomText;

// Encodes `text`; with `strict` valid UTF-8 must encode and its ids must decode (a mutated
// file may legitimately fail at encode time, e.g. an unk token missing from its vocabulary).
void CheckEncodeDecode(const Tokenizer& tokenizer, const std::string& text, bool strict) {
  auto ids = tokenizer.Encode(text, true);
  if (FindInvalidUtf8(text) != std::string::npos) {
    ASSERT_FALSE(ids.ok());
    return;
  }
  if (!strict && !ids.ok()) return;
  ASSERT_TRUE(ids.ok()) << ids.status();
  for (bool skip : {false, true}) {
    auto decoded = tokenizer.Decode(*ids, skip);
    if (!strict && !decoded.ok()) continue;
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    ASSERT_EQ(FindInvalidUtf8(*decoded), std::string::npos);
  }
}

void EncodeDecodeRandomInputs(const Tokenizer& tokenizer, std::mt19937& rng) {
  for (int i = 0; i < 1500; ++i) {
    const std::string text = i % 2 == 0 ? RandomBytes(rng, 48) : RandomText(rng, 24);
    CheckEncodeDecode(tokenizer, text, true);
    if (::testing::Test::HasFatalFailure()) return;
  }
}

TEST(TokenizerFuzzTest, RandomBytesAndTextNeverCrashTheTinyTokenizer) {
  auto tiny = Tokenizer::FromJson(loom::testing::TinyTokenizerJson().dump(), "tiny");
  ASSERT_TRUE(tiny.ok());
  std::mt19937 rng(1234);
  EncodeDecodeRandomInputs(**tiny, rng);
}

TEST(TokenizerFuzzTest, RandomBytesAndTextNeverCrashRealTokenizers) {
  if (!loom::testing::SharedFixturesPresent()) {
    GTEST_SKIP() << "needs the real tokenizers of ../shared/fixtures, not found at "
                 << loom::testing::SharedFixtures();
  }
  std::mt19937 rng(1234);
  for (const char* name : {"llama2", "phi3-mini", "phi2-gpt2", "qwen3", "llama3"}) {
    const Tokenizer* tokenizer = loom::testing::FixtureTokenizer(name);
    ASSERT_NE(tokenizer, nullptr) << name;
    EncodeDecodeRandomInputs(*tokenizer, rng);
    if (HasFatalFailure()) return;
  }
}

TEST(TokenizerFuzzTest, ByteLevelRoundTripsAnyText) {
  if (!loom::testing::SharedFixturesPresent()) {
    GTEST_SKIP() << "needs the GPT-2 tokenizer of ../shared/fixtures, not found at "
                 << loom::testing::SharedFixtures();
  }
  // GPT-2 has no normalizer: decode(encode(x)) == x for every valid text.
  const Tokenizer* gpt2 = loom::testing::FixtureTokenizer("phi2-gpt2");
  ASSERT_NE(gpt2, nullptr);
  std::mt19937 rng(99);
  for (int i = 0; i < 2000; ++i) {
    const std::string text = RandomText(rng, 24);
    auto ids = gpt2->Encode(text, false);
    ASSERT_TRUE(ids.ok());
    EXPECT_EQ(*gpt2->Decode(*ids, false), text);
  }
}

// One random change somewhere in the document.
void Mutate(Json& node, std::mt19937& rng, int depth) {
  if ((node.is_object() || node.is_array()) && !node.empty() && depth < 6 && rng() % 4 != 0) {
    const size_t index = rng() % node.size();
    auto it = node.begin();
    std::advance(it, index);
    if (rng() % 8 == 0) {
      if (node.is_object()) {
        node.erase(it.key());
      } else {
        node.erase(index);
      }
      return;
    }
    Mutate(*it, rng, depth + 1);
    return;
  }
  static const std::vector<Json> kValues = {
      nullptr,
      true,
      false,
      0,
      -1,
      7,
      1 << 30,
      0.5,
      "",
      "x",
      "Sequence",
      "BPE",
      "Unigram",
      "ByteLevel",
      "Metaspace",
      "Split",
      "Isolated",
      "▁",
      "<0x41>",
      Json::array(),
      Json::object(),
      Json::array({"a", "b"}),
      Json{{"type", "NFC"}},
      Json{{"Regex", "(\\d+"}},
      Json{{"String", ""}},
      Json{{"type", "Strip"}, {"content", " "}, {"start", 99}}};
  node = kValues[rng() % kValues.size()];
}

TEST(TokenizerFuzzTest, MutatedTokenizerJsonLoadsOrFails) {
  const Json base = loom::testing::TinyTokenizerJson();
  const std::string base_text = base.dump();
  std::mt19937 rng(4321);
  int loaded = 0, failed = 0;
  for (int i = 0; i < 1500; ++i) {
    std::string text;
    if (i % 3 == 2) {
      // Byte-level damage to the serialized file.
      text = base_text;
      const int edits = 1 + rng() % 4;
      for (int e = 0; e < edits; ++e) {
        const size_t at = rng() % text.size();
        switch (rng() % 3) {
          case 0:
            text[at] = static_cast<char>(rng() & 0xFF);
            break;
          case 1:
            text.erase(at, 1 + rng() % 8);
            break;
          default:
            text.resize(at);
            break;
        }
      }
    } else {
      Json json = base;
      const int mutations = 1 + rng() % 3;
      for (int m = 0; m < mutations; ++m) Mutate(json, rng, 0);
      text = json.dump();
    }
    auto tokenizer = Tokenizer::FromJson(text, "mutated.json");
    if (!tokenizer.ok()) {
      ++failed;
      EXPECT_NE(tokenizer.status().message().find("mutated.json"), std::string::npos);
      continue;
    }
    ++loaded;
    for (const char* sample : {"", "the theater", "<|bos|> x <|eos|>", "héllo 123 😀", "  \n"}) {
      CheckEncodeDecode(**tokenizer, sample, false);
      if (HasFatalFailure()) return;
    }
  }
  EXPECT_GT(loaded, 0);
  EXPECT_GT(failed, 0);
}

}  // namespace
}  // namespace loom::tokenizer
