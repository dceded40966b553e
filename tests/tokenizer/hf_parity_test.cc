// Loom's tokenizer against HF `tokenizers` 0.23 on every reference tokenizer: the corpus of
// tests/data/tokenizers/corpus.json (encode with/without special tokens, decode with/without
// skipping) and the per-block digests of War and Peace.
#include <cinttypes>
#include <cstdio>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/test_paths.h"
#include "tests/tokenizer/tokenizer_fixtures.h"

namespace loom::tokenizer {
namespace {

using ::loom::testing::FixtureTokenizer;
using ::loom::testing::ReadJsonFile;
using ::loom::testing::ReadTextFile;
using ::loom::testing::SharedFixtures;
using ::loom::testing::SharedFixturesPresent;
using ::loom::testing::TokenizerDataDir;
using Json = nlohmann::json;

constexpr int kMaxReportedMismatches = 5;

std::string Printable(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7F) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02X", c);
      out += buf;
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  return out.size() > 200 ? out.substr(0, 200) + "..." : out;
}

std::vector<int32_t> Ids(const Json& array) {
  std::vector<int32_t> ids;
  for (const Json& id : array) ids.push_back(id.get<int32_t>());
  return ids;
}

class HfParityTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (!SharedFixturesPresent()) {
      GTEST_SKIP() << "shared fixtures not found at " << SharedFixtures()
                   << " (../shared/fixtures beside the repository); skipping HF parity";
    }
    tokenizer_ = FixtureTokenizer(GetParam());
    ASSERT_NE(tokenizer_, nullptr);
  }
  const Tokenizer* tokenizer_ = nullptr;
};

TEST_P(HfParityTest, CorpusMatchesHfTokenizers) {
  const Json corpus = ReadJsonFile(TokenizerDataDir() + "/corpus.json");
  const Json expected = ReadJsonFile(TokenizerDataDir() + "/" + GetParam() + "/expected.json");
  ASSERT_FALSE(corpus.is_discarded());
  ASSERT_FALSE(expected.is_discarded());
  const Json& texts = corpus["texts"];
  const Json& cases = expected["cases"];
  ASSERT_EQ(texts.size(), cases.size());
  ASSERT_GE(texts.size(), 500u);
  int mismatches = 0;
  auto report = [&](size_t i, const char* what, const std::string& detail) {
    if (++mismatches <= kMaxReportedMismatches) {
      ADD_FAILURE() << GetParam() << " case " << i << " (" << corpus["tags"][i] << ") "
                    << Printable(texts[i].get<std::string>()) << ": " << what << " " << detail;
    }
  };
  for (size_t i = 0; i < texts.size(); ++i) {
    const std::string text = texts[i].get<std::string>();
    const Json& want = cases[i];
    const std::vector<int32_t> ids = Ids(want["ids"]);
    auto with_special = tokenizer_->Encode(text, true);
    auto without_special = tokenizer_->Encode(text, false);
    if (!with_special.ok() || *with_special != ids) {
      report(i, "ids differ",
             ::testing::PrintToString(with_special.value_or(std::vector<int32_t>())) + " vs " +
                 ::testing::PrintToString(ids));
    }
    if (!without_special.ok() || *without_special != Ids(want["ids_no_special"])) {
      report(i, "ids_no_special differ",
             ::testing::PrintToString(without_special.value_or(std::vector<int32_t>())));
    }
    auto decoded = tokenizer_->Decode(ids, false);
    if (!decoded.ok() || *decoded != want["decoded"].get<std::string>()) {
      report(i, "decoded differs:",
             Printable(decoded.value_or("<error>")) + " vs " +
                 Printable(want["decoded"].get<std::string>()));
    }
    auto decoded_skip = tokenizer_->Decode(ids, true);
    if (!decoded_skip.ok() || *decoded_skip != want["decoded_skip"].get<std::string>()) {
      report(i, "decoded_skip differs:", Printable(decoded_skip.value_or("<error>")));
    }
  }
  EXPECT_EQ(mismatches, 0) << GetParam() << ": total mismatches";
}

class Fnv1a64 {
 public:
  void Add(const std::string& bytes) {
    for (unsigned char c : bytes) {
      hash_ ^= c;
      hash_ *= 0x100000001b3ULL;
    }
  }
  std::string Hex() const {
    char buf[17];
    std::snprintf(buf, sizeof(buf), "%016" PRIx64, hash_);
    return buf;
  }

 private:
  uint64_t hash_ = 0xcbf29ce484222325ULL;
};

TEST_P(HfParityTest, WarAndPeaceDigestsMatchHfTokenizers) {
  const Json want = ReadJsonFile(TokenizerDataDir() + "/" + GetParam() + "/war_and_peace.json");
  ASSERT_FALSE(want.is_discarded());
  const std::string text = ReadTextFile(SharedFixtures() + "/text/war-and-peace.txt");
  ASSERT_FALSE(text.empty());
  std::vector<std::string> lines;
  for (size_t begin = 0;;) {
    const size_t end = text.find('\n', begin);
    lines.push_back(text.substr(begin, end == std::string::npos ? end : end - begin));
    if (end == std::string::npos) break;
    begin = end + 1;
  }
  ASSERT_EQ(lines.size(), want["lines"].get<size_t>());
  const size_t block_size = want["block_size"].get<size_t>();
  const Json& blocks = want["blocks"];
  int64_t total_tokens = 0;
  for (size_t b = 0; b < blocks.size(); ++b) {
    Fnv1a64 ids_hash, decoded_hash;
    int64_t tokens = 0;
    for (size_t l = b * block_size; l < std::min(lines.size(), (b + 1) * block_size); ++l) {
      auto ids = tokenizer_->Encode(lines[l], false);
      ASSERT_TRUE(ids.ok()) << ids.status();
      std::string joined;
      for (size_t k = 0; k < ids->size(); ++k) {
        if (k > 0) joined.push_back(',');
        joined += std::to_string((*ids)[k]);
      }
      ids_hash.Add(joined + ";");
      auto decoded = tokenizer_->Decode(*ids, false);
      ASSERT_TRUE(decoded.ok()) << decoded.status();
      decoded_hash.Add(*decoded + "\n");
      tokens += ids->size();
    }
    EXPECT_EQ(ids_hash.Hex(), blocks[b]["ids_fnv"].get<std::string>()) << "block " << b;
    EXPECT_EQ(decoded_hash.Hex(), blocks[b]["decoded_fnv"].get<std::string>()) << "block " << b;
    EXPECT_EQ(tokens, blocks[b]["tokens"].get<int64_t>()) << "block " << b;
    total_tokens += tokens;
  }
  EXPECT_EQ(total_tokens, want["total_tokens"].get<int64_t>());
}

INSTANTIATE_TEST_SUITE_P(AllTokenizers, HfParityTest,
                         ::testing::ValuesIn(loom::testing::FixtureTokenizerNames()),
                         [](const auto& info) {
                           std::string name = info.param;
                           for (char& c : name) {
                             if (c == '-' || c == '.') c = '_';
                           }
                           return name;
                         });

}  // namespace
}  // namespace loom::tokenizer
