// The pipeline stages on their own, with expected values taken from HF `tokenizers` 0.23
// (pre_tokenize_str / normalize_str / decoders in Python).
#include <string>
#include <vector>

#include "controller/tokenizer/decoder.h"
#include "controller/tokenizer/normalizer.h"
#include "controller/tokenizer/pre_tokenizer.h"
#include "controller/tokenizer/regex.h"
#include "controller/tokenizer/utf8.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace loom::tokenizer {
namespace {

using ::testing::ElementsAre;

std::vector<std::string> PreTokenize(const std::string& json, const std::string& text) {
  auto pre = ParsePreTokenizer(Json::parse(json), "pre_tokenizer");
  EXPECT_TRUE(pre.ok()) << pre.status();
  if (!pre.ok()) return {};
  std::vector<PreToken> pieces{{text, true}};
  (*pre)->PreTokenize(pieces);
  std::vector<std::string> out;
  for (const PreToken& piece : pieces) out.push_back(piece.text);
  return out;
}

std::string SplitJson(const std::string& behavior, bool invert) {
  return R"({"type":"Split","pattern":{"Regex":"\\d"},"behavior":")" + behavior + R"(","invert":)" +
         (invert ? "true" : "false") + "}";
}

TEST(SplitPreTokenizerTest, EveryBehaviorMatchesHf) {
  const std::string s = "a1b22 c-3";
  EXPECT_THAT(PreTokenize(SplitJson("Removed", false), s), ElementsAre("a", "b", " c-"));
  EXPECT_THAT(PreTokenize(SplitJson("Removed", true), s), ElementsAre("1", "2", "2", "3"));
  EXPECT_THAT(PreTokenize(SplitJson("Isolated", false), s),
              ElementsAre("a", "1", "b", "2", "2", " c-", "3"));
  EXPECT_THAT(PreTokenize(SplitJson("MergedWithPrevious", false), s),
              ElementsAre("a1", "b2", "2", " c-3"));
  EXPECT_THAT(PreTokenize(SplitJson("MergedWithPrevious", true), s),
              ElementsAre("a", "1b", "2", "2 c-", "3"));
  EXPECT_THAT(PreTokenize(SplitJson("MergedWithNext", false), s),
              ElementsAre("a", "1b", "2", "2 c-", "3"));
  EXPECT_THAT(PreTokenize(SplitJson("MergedWithNext", true), s),
              ElementsAre("a1", "b2", "2", " c-3"));
  EXPECT_THAT(PreTokenize(SplitJson("Contiguous", false), s),
              ElementsAre("a", "1", "b", "22", " c-", "3"));
}

TEST(PreTokenizerTest, SmallerTypesMatchHf) {
  EXPECT_THAT(PreTokenize(R"({"type":"Digits","individual_digits":true})", "ab123c4"),
              ElementsAre("ab", "1", "2", "3", "c", "4"));
  EXPECT_THAT(PreTokenize(R"({"type":"Digits","individual_digits":false})", "ab123c4"),
              ElementsAre("ab", "123", "c", "4"));
  EXPECT_THAT(PreTokenize(R"({"type":"Metaspace","replacement":"▁","prepend_scheme":"first"})",
                          "hi  there"),
              ElementsAre("▁hi", "▁", "▁there"));
  EXPECT_THAT(PreTokenize(R"({"type":"Whitespace"})", "hi, there! é_x"),
              ElementsAre("hi", ",", "there", "!", "é_x"));
  EXPECT_THAT(PreTokenize(R"({"type":"WhitespaceSplit"})", " hi  there\t"),
              ElementsAre("hi", "there"));
  EXPECT_THAT(PreTokenize(R"({"type":"Punctuation"})", "a,b!!c"),
              ElementsAre("a", ",", "b", "!", "!", "c"));
  // GPT-2 bytes: ' ' is 'Ġ'.
  EXPECT_THAT(PreTokenize(R"({"type":"ByteLevel","add_prefix_space":true})", "Hi there"),
              ElementsAre("ĠHi", "Ġthere"));
}

std::string Normalize(const std::string& json, std::string text) {
  auto normalizer = ParseNormalizer(Json::parse(json), "normalizer");
  EXPECT_TRUE(normalizer.ok()) << normalizer.status();
  if (normalizer.ok()) (*normalizer)->Normalize(text);
  return text;
}

TEST(NormalizerTest, UnicodeFormsCaseAndStripMatchHf) {
  EXPECT_EQ(Normalize(R"({"type":"Sequence","normalizers":[{"type":"NFKC"},{"type":"Lowercase"},
                         {"type":"Strip","strip_left":true,"strip_right":true}]})",
                      "  ＡＢＣ ﬁ Σ  "),
            "abc fi σ");
  EXPECT_EQ(
      Normalize(R"({"type":"Sequence","normalizers":[{"type":"NFD"},{"type":"StripAccents"}]})",
                "Café"),
      "Cafe");
  EXPECT_EQ(Normalize(R"({"type":"NFC"})", "e\xCC\x81"), "\xC3\xA9");
  EXPECT_EQ(Normalize(R"({"type":"Prepend","prepend":"▁"})", ""), "");
  EXPECT_EQ(Normalize(R"({"type":"Replace","pattern":{"Regex":"\\s+"},"content":"_"})", "a  b\tc"),
            "a_b_c");
}

std::string DecodeTokens(const std::string& json, std::vector<std::string> tokens) {
  auto decoder = ParseDecoder(Json::parse(json), "decoder");
  EXPECT_TRUE(decoder.ok()) << decoder.status();
  if (!decoder.ok()) return "";
  (*decoder)->DecodeChain(tokens);
  std::string out;
  for (const std::string& t : tokens) out += t;
  return out;
}

TEST(DecoderTest, ByteFallbackAndMetaspaceMatchHf) {
  // Invalid byte runs become one U+FFFD per byte; Rust's from_str_radix accepts "+1".
  EXPECT_EQ(
      DecodeTokens(R"({"type":"ByteFallback"})", {"<0xE4>", "a", "<0x41>", "<0xe4>", "<0x+1>"}),
      "\uFFFDa\uFFFD\uFFFD\uFFFD");
  EXPECT_EQ(DecodeTokens(R"({"type":"ByteFallback"})", {"<0xE4>", "<0xBD>", "<0xA0>"}), "你");
  EXPECT_EQ(DecodeTokens(R"({"type":"Metaspace"})", {"▁▁hi", "▁x", "▁"}), "hi x ");
  EXPECT_EQ(DecodeTokens(R"({"type":"Metaspace","prepend_scheme":"never"})", {"▁▁hi", "▁x", "▁"}),
            "  hi x ");
  EXPECT_EQ(DecodeTokens(R"({"type":"ByteLevel"})", {"Hello", "Ġw", "orld", "<|x|>"}),
            "Hello world<|x|>");
}

TEST(Utf8Test, LossyReplacesMaximalSubparts) {
  EXPECT_EQ(Utf8Lossy("\xE4\xBD"
                      "a"),
            "\uFFFD"
            "a");
  EXPECT_EQ(Utf8Lossy("\xF0\x9F"), "\uFFFD");
  EXPECT_EQ(Utf8Lossy("\xC0\x80"), "\uFFFD\uFFFD");
  EXPECT_EQ(Utf8Lossy("\xED\xA0\x80"), "\uFFFD\uFFFD\uFFFD");  // a surrogate
  EXPECT_EQ(FindInvalidUtf8("abc\xFF"), 3u);
  EXPECT_EQ(FindInvalidUtf8("h\xC3\xA9llo, \xF0\x9F\x98\x80"), std::string::npos);
  EXPECT_EQ(FindInvalidUtf8("12345678\xF4\x90\x80\x80"), 8u);  // above U+10FFFF
}

TEST(RegexTest, SpellsOnigurumaWhitespace) {
  EXPECT_EQ(TranslateOnigurumaPattern(R"(\s+(?!\S)|[^\s\p{L}])"),
            R"([\t-\r\x{85}\p{Z}]+(?![^\t-\r\x{85}\p{Z}])|[^\t-\r\x{85}\p{Z}\p{L}])");
  // U+180E is \s for PCRE2 but not for Oniguruma.
  auto regex = Regex::Compile(R"(\s+)", false);
  ASSERT_TRUE(regex.ok());
  const std::vector<Span> spans = (*regex)->FindMatches(
      "a\xE1\xA0\x8E"
      "b c");
  ASSERT_EQ(spans.size(), 3u);
  EXPECT_FALSE(spans[0].is_match);
  EXPECT_EQ(spans[0].end, 5u);
  EXPECT_TRUE(spans[1].is_match);
}

}  // namespace
}  // namespace loom::tokenizer
