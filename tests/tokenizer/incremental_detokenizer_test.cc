// Streaming detokenization: the deltas are valid UTF-8 and add up to Decode of all ids.
#include "controller/tokenizer/incremental_detokenizer.h"

#include <random>
#include <string>
#include <vector>

#include "controller/tokenizer/utf8.h"
#include "gtest/gtest.h"
#include "tests/tokenizer/random_text.h"
#include "tests/tokenizer/tiny_tokenizer_json.h"
#include "tests/test_paths.h"
#include "tests/tokenizer/tokenizer_fixtures.h"

namespace loom::tokenizer {
namespace {

// Feeds `ids` one by one; checks every delta and the total against Decode.
void ExpectStreamEqualsDecode(const Tokenizer& tokenizer, const std::vector<int32_t>& ids,
                              bool skip_special) {
  IncrementalDetokenizer stream(&tokenizer, skip_special);
  std::string streamed;
  for (int32_t id : ids) {
    auto delta = stream.Next(id);
    ASSERT_TRUE(delta.ok()) << delta.status();
    ASSERT_EQ(FindInvalidUtf8(*delta), std::string::npos) << "delta is not valid UTF-8";
    streamed += *delta;
  }
  auto rest = stream.Flush();
  ASSERT_TRUE(rest.ok());
  streamed += *rest;
  auto full = tokenizer.Decode(ids, skip_special);
  ASSERT_TRUE(full.ok());
  ASSERT_EQ(streamed, *full) << ::testing::PrintToString(ids);
}

// Random id sequences of three kinds: real encodings, byte-fallback runs (multi-byte
// characters cut into <0xXX> tokens, plus stray bytes), and uniformly random ids.
std::vector<int32_t> RandomIds(const Tokenizer& tokenizer, std::mt19937& rng) {
  std::vector<int32_t> ids;
  const int kind = rng() % 3;
  if (kind == 0) {
    ids = *tokenizer.Encode(loom::testing::RandomText(rng, 16), rng() % 2 == 0);
  } else if (kind == 1) {
    const std::string text = loom::testing::RandomText(rng, 8);
    for (unsigned char c : text) {
      char name[8];
      std::snprintf(name, sizeof(name), "<0x%02X>", rng() % 10 == 0 ? (rng() & 0xFF) : c);
      if (auto id = tokenizer.TokenToId(name)) {
        ids.push_back(*id);
      } else if (auto chars = tokenizer.Encode(std::string(1, 'a' + c % 26), false); chars.ok()) {
        ids.insert(ids.end(), chars->begin(), chars->end());
      }
      if (rng() % 6 == 0) {
        auto word = tokenizer.Encode(" word", false);
        ids.insert(ids.end(), word->begin(), word->end());
      }
    }
  } else {
    const int n = rng() % 24;
    for (int i = 0; i < n; ++i) {
      int32_t id = rng() % tokenizer.vocab_size();
      if (tokenizer.IdToToken(id)) ids.push_back(id);
    }
  }
  return ids;
}

TEST(IncrementalDetokenizerTest, TinyTokenizerStreamsAWord) {
  auto tokenizer = Tokenizer::FromJson(loom::testing::TinyTokenizerJson().dump(), "tiny");
  ASSERT_TRUE(tokenizer.ok());
  // "é" is two byte tokens: nothing may be emitted between them.
  const std::vector<int32_t> ids = *(*tokenizer)->Encode("the é", false);
  IncrementalDetokenizer stream(tokenizer->get(), false);
  std::vector<std::string> deltas;
  for (int32_t id : ids) deltas.push_back(*stream.Next(id));
  ASSERT_EQ(deltas.size(), 4u);  // "the", "Ġ", 0xC3, 0xA9
  EXPECT_EQ(deltas[0], "the");
  EXPECT_EQ(deltas[1], " ");
  EXPECT_EQ(deltas[2], "");
  EXPECT_EQ(deltas[3], "é");
  EXPECT_EQ(*stream.Flush(), "");
}

void ExpectRandomStreamsEqualDecode(const Tokenizer& tokenizer, std::mt19937& rng) {
  for (int i = 0; i < 300; ++i) {
    const std::vector<int32_t> ids = RandomIds(tokenizer, rng);
    for (bool skip : {false, true}) {
      ExpectStreamEqualsDecode(tokenizer, ids, skip);
      if (::testing::Test::HasFatalFailure()) return;
    }
  }
}

TEST(IncrementalDetokenizerTest, RandomStreamsEqualDecodeOnTheTinyTokenizer) {
  auto tiny = Tokenizer::FromJson(loom::testing::TinyTokenizerJson().dump(), "tiny");
  ASSERT_TRUE(tiny.ok());
  std::mt19937 rng(777);
  ExpectRandomStreamsEqualDecode(**tiny, rng);
}

TEST(IncrementalDetokenizerTest, RandomStreamsEqualDecodeOnRealTokenizers) {
  if (!loom::testing::SharedFixturesPresent()) {
    GTEST_SKIP() << "needs the real tokenizers of ../shared/fixtures, not found at "
                 << loom::testing::SharedFixtures();
  }
  std::mt19937 rng(777);
  for (const std::string& name : loom::testing::FixtureTokenizerNames()) {
    const Tokenizer* tokenizer = loom::testing::FixtureTokenizer(name);
    ASSERT_NE(tokenizer, nullptr) << name;
    ExpectRandomStreamsEqualDecode(*tokenizer, rng);
    if (HasFatalFailure()) return;
  }
}

TEST(IncrementalDetokenizerTest, UnknownIdIsAnError) {
  auto tokenizer = Tokenizer::FromJson(loom::testing::TinyTokenizerJson().dump(), "tiny");
  ASSERT_TRUE(tokenizer.ok());
  IncrementalDetokenizer stream(tokenizer->get(), false);
  EXPECT_FALSE(stream.Next(-5).ok());
  EXPECT_FALSE(stream.Next((*tokenizer)->vocab_size()).ok());
}

}  // namespace
}  // namespace loom::tokenizer
