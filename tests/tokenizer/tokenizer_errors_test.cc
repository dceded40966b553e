// Bad input and bad files: every failure is a Status naming the problem, never a crash.
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "controller/tokenizer/tokenizer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/test_paths.h"
#include "tests/tokenizer/tiny_tokenizer_json.h"

namespace loom::tokenizer {
namespace {

using ::loom::testing::TinyTokenizerJson;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kSource[] = "models/x/tokenizer.json";

absl::StatusOr<std::unique_ptr<Tokenizer>> Load(const Json& json) {
  return Tokenizer::FromJson(json.dump(), kSource);
}

// Loading must fail with a message naming the file and every string of `parts`.
void ExpectLoadError(const Json& json, const std::vector<std::string>& parts) {
  auto tokenizer = Load(json);
  ASSERT_FALSE(tokenizer.ok());
  const std::string message(tokenizer.status().message());
  EXPECT_THAT(message, HasSubstr(kSource));
  for (const std::string& part : parts) EXPECT_THAT(message, HasSubstr(part));
}

TEST(TokenizerTest, TinyTokenizerEncodesAndDecodes) {
  auto tokenizer = Load(TinyTokenizerJson());
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  const Tokenizer& t = **tokenizer;
  const int32_t the = *t.TokenToId("the"), space_the = *t.TokenToId("Ġthe");
  const int32_t bos = *t.TokenToId("<|bos|>"), eos = *t.TokenToId("<|eos|>");
  EXPECT_THAT(*t.Encode("the the", false), ElementsAre(the, space_the));
  EXPECT_THAT(*t.Encode("the<|eos|>", true), ElementsAre(bos, the, eos));
  EXPECT_EQ(*t.Decode(std::vector<int32_t>{bos, the, eos}, false), "<|bos|>the<|eos|>");
  EXPECT_EQ(*t.Decode(std::vector<int32_t>{bos, the, eos}, true), "the");
  EXPECT_EQ(t.bos_token_id(), bos);
  EXPECT_EQ(t.vocab_size(), eos + 1);
  EXPECT_THAT(t.special_token_ids(), ElementsAre(bos, eos));
  EXPECT_TRUE(t.IsSpecial(eos));
  EXPECT_FALSE(t.IsSpecial(the));
}

TEST(TokenizerTest, MergesAsPairsEqualMergesAsStrings) {
  Json json = TinyTokenizerJson();
  auto strings = Load(json);
  Json pairs = Json::array();
  for (const Json& merge : json["model"]["merges"]) {
    const std::string line = merge.get<std::string>();
    pairs.push_back(Json::array({line.substr(0, line.find(' ')), line.substr(line.find(' ') + 1)}));
  }
  json["model"]["merges"] = pairs;
  auto as_pairs = Load(json);
  ASSERT_TRUE(strings.ok() && as_pairs.ok());
  const std::string text = "the other theater";
  EXPECT_EQ(*(*strings)->Encode(text, false), *(*as_pairs)->Encode(text, false));
}

TEST(TokenizerTest, InvalidUtf8IsAnErrorNamingTheOffset) {
  auto tokenizer = Load(TinyTokenizerJson());
  ASSERT_TRUE(tokenizer.ok());
  for (const std::string& bad : {std::string("abc\xFF"), std::string("abc\xC3"),
                                 std::string("abc\xED\xA0\x80"), std::string("abc\xC0\xAF")}) {
    auto ids = (*tokenizer)->Encode(bad, true);
    ASSERT_FALSE(ids.ok());
    EXPECT_EQ(ids.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(ids.status().message(), HasSubstr("byte offset 3"));
  }
}

TEST(TokenizerTest, UnknownIdIsAnError) {
  auto tokenizer = Load(TinyTokenizerJson());
  ASSERT_TRUE(tokenizer.ok());
  for (int32_t id : {-1, 100000, (*tokenizer)->vocab_size()}) {
    auto text = (*tokenizer)->Decode(std::vector<int32_t>{1, id}, false);
    ASSERT_FALSE(text.ok());
    EXPECT_EQ(text.status().code(), absl::StatusCode::kNotFound);
    EXPECT_THAT(text.status().message(), HasSubstr(std::to_string(id)));
  }
}

TEST(TokenizerErrorsTest, MalformedJson) {
  for (const char* text : {"", "{", "[1, 2]", "{\"model\": 3}", "nul"}) {
    auto tokenizer = Tokenizer::FromJson(text, kSource);
    ASSERT_FALSE(tokenizer.ok()) << text;
    EXPECT_THAT(tokenizer.status().message(), HasSubstr(kSource));
  }
}

TEST(TokenizerErrorsTest, UnsupportedModelTypesAreNamed) {
  for (const char* type : {"Unigram", "WordPiece", "WordLevel"}) {
    Json json = TinyTokenizerJson();
    json["model"]["type"] = type;
    ExpectLoadError(json, {"unsupported model type", type});
  }
}

TEST(TokenizerErrorsTest, UnsupportedComponentsAreNamed) {
  struct Case {
    const char* key;
    Json component;
    const char* what;
  };
  const std::vector<Case> cases = {
      {"normalizer", Json{{"type", "Precompiled"}, {"precompiled_charsmap", "AAAA"}},
       "unsupported normalizer type \"Precompiled\""},
      {"normalizer", Json{{"type", "BertNormalizer"}}, "\"BertNormalizer\""},
      {"pre_tokenizer", Json{{"type", "UnicodeScripts"}},
       "unsupported pre_tokenizer type \"UnicodeScripts\""},
      {"pre_tokenizer",
       Json{{"type", "Sequence"}, {"pretokenizers", Json::array({Json{{"type", "Nope"}}})}},
       "pre_tokenizer.pretokenizers[0]"},
      {"post_processor", Json{{"type", "Mystery"}}, "unsupported post_processor type \"Mystery\""},
      {"decoder", Json{{"type", "CTC"}}, "unsupported decoder type \"CTC\""},
      {"decoder", Json{{"type", "WordPiece"}}, "\"WordPiece\""},
      {"pre_tokenizer",
       Json{{"type", "Split"}, {"pattern", {{"Regex", "("}}}, {"behavior", "Isolated"}},
       "cannot compile regex"},
      {"pre_tokenizer",
       Json{{"type", "Split"}, {"pattern", {{"String", "x"}}}, {"behavior", "Sideways"}},
       "unsupported split behavior \"Sideways\""},
      {"pre_tokenizer", Json{{"type", "Metaspace"}, {"prepend_scheme", "sometimes"}},
       "prepend_scheme \"sometimes\""},
      {"pre_tokenizer", Json{{"type", 7}}, "has no string \"type\""},
  };
  for (const Case& c : cases) {
    Json json = TinyTokenizerJson();
    json[c.key] = c.component;
    SCOPED_TRACE(c.what);
    ExpectLoadError(json, {c.what});
  }
}

TEST(TokenizerErrorsTest, BrokenModelsAreNamed) {
  Json json = TinyTokenizerJson();
  json["model"]["merges"].push_back("q zz");
  ExpectLoadError(json, {"model.merges[7]", "\"zz\" is not in the vocab"});
  json = TinyTokenizerJson();
  json["model"]["merges"].push_back("a b c");
  ExpectLoadError(json, {"model.merges[7]"});
  json = TinyTokenizerJson();
  json["model"]["vocab"]["x"] = "seven";
  ExpectLoadError(json, {"model.vocab[\"x\"]"});
  json = TinyTokenizerJson();
  json["model"]["dropout"] = 0.1;
  ExpectLoadError(json, {"dropout"});
  json = TinyTokenizerJson();
  json.erase("model");
  ExpectLoadError(json, {"model"});
}

TEST(TokenizerErrorsTest, MissingFileIsNotFound) {
  auto tokenizer = Tokenizer::FromFile("/nonexistent/tokenizer.json");
  ASSERT_FALSE(tokenizer.ok());
  EXPECT_EQ(tokenizer.status().code(), absl::StatusCode::kNotFound);
}

TEST(TokenizerTest, ModelDirReadsBosAndEosFromTokenizerConfig) {
  const std::string dir = loom::testing::MakeTempDir("tokenizer-model-dir");
  std::ofstream(dir + "/tokenizer.json") << TinyTokenizerJson().dump();
  std::ofstream(dir + "/tokenizer_config.json")
      << R"({"bos_token": null, "eos_token": {"content": "<|eos|>", "special": true}})";
  auto tokenizer = Tokenizer::FromModelDir(dir);
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  EXPECT_EQ((*tokenizer)->eos_token_id(), (*tokenizer)->TokenToId("<|eos|>"));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace loom::tokenizer
