#include "controller/tokenizer/pre_tokenizer.h"

#include <functional>
#include <utility>

#include "common/status.h"
#include "controller/tokenizer/byte_level_alphabet.h"
#include "controller/tokenizer/regex.h"
#include "controller/tokenizer/split_behavior.h"
#include "controller/tokenizer/unicode_props.h"
#include "controller/tokenizer/utf8.h"

namespace loom::tokenizer {
namespace {

// GPT-2's pattern, as HF's ByteLevel pre-tokenizer compiles it.
constexpr char kGpt2Pattern[] =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
// HF's Whitespace pre-tokenizer keeps the runs of \w and of other non-space characters;
// Oniguruma's \w is spelled out (PCRE2's lacks marks).
constexpr char kWordsPattern[] = R"([\p{L}\p{M}\p{Nd}\p{Pc}]+|[^\p{L}\p{M}\p{Nd}\p{Pc}\s]+)";

// Replaces every piece by the kept spans of `split(piece)`; empty results are dropped.
void Resplit(std::vector<PreToken>& pieces,
             const std::function<std::vector<Span>(const std::string&)>& split) {
  std::vector<PreToken> out;
  out.reserve(pieces.size() * 2);
  for (PreToken& piece : pieces) {
    for (const Span& span : split(piece.text)) {
      if (span.begin == span.end) continue;
      out.push_back({piece.text.substr(span.begin, span.end - span.begin),
                     piece.at_text_start && span.begin == 0});
    }
  }
  pieces = std::move(out);
}

class ByteLevelPreTokenizer : public PreTokenizer {
 public:
  ByteLevelPreTokenizer(bool add_prefix_space, std::unique_ptr<Regex> regex)
      : add_prefix_space_(add_prefix_space), regex_(std::move(regex)) {}
  void PreTokenize(std::vector<PreToken>& pieces) const override {
    if (add_prefix_space_) {
      for (PreToken& piece : pieces) {
        if (!piece.text.empty() && piece.text[0] != ' ') piece.text.insert(0, " ");
      }
    }
    if (regex_ != nullptr) {
      Resplit(pieces, [&](const std::string& text) { return regex_->FindMatches(text); });
    }
    for (PreToken& piece : pieces) {
      std::string mapped;
      mapped.reserve(piece.text.size() * 2);
      AppendByteLevel(piece.text, mapped);
      piece.text = std::move(mapped);
    }
  }

 private:
  bool add_prefix_space_;
  std::unique_ptr<Regex> regex_;  // null when use_regex is false
};

class SplitPreTokenizer : public PreTokenizer {
 public:
  SplitPreTokenizer(std::unique_ptr<Regex> regex, SplitBehavior behavior, bool invert)
      : regex_(std::move(regex)), behavior_(behavior), invert_(invert) {}
  void PreTokenize(std::vector<PreToken>& pieces) const override {
    Resplit(pieces, [&](const std::string& text) {
      std::vector<Span> spans = regex_->FindMatches(text);
      if (invert_) {
        for (Span& s : spans) s.is_match = !s.is_match;
      }
      return ApplySplitBehavior(spans, behavior_);
    });
  }

 private:
  std::unique_ptr<Regex> regex_;
  SplitBehavior behavior_;
  bool invert_;
};

// Splits on characters chosen by a predicate (Digits, WhitespaceSplit, Punctuation, ...).
class CharSplitPreTokenizer : public PreTokenizer {
 public:
  CharSplitPreTokenizer(std::function<bool(char32_t)> predicate, SplitBehavior behavior)
      : predicate_(std::move(predicate)), behavior_(behavior) {}
  void PreTokenize(std::vector<PreToken>& pieces) const override {
    Resplit(pieces, [&](const std::string& text) {
      return ApplySplitBehavior(CharMatches(text, predicate_), behavior_);
    });
  }

 private:
  std::function<bool(char32_t)> predicate_;
  SplitBehavior behavior_;
};

enum class PrependScheme { kAlways, kFirst, kNever };

class MetaspacePreTokenizer : public PreTokenizer {
 public:
  MetaspacePreTokenizer(char32_t replacement, PrependScheme scheme, bool split)
      : replacement_(replacement), scheme_(scheme), split_(split) {
    AppendUtf8(replacement, replacement_utf8_);
  }
  void PreTokenize(std::vector<PreToken>& pieces) const override {
    for (PreToken& piece : pieces) {
      std::string replaced;
      replaced.reserve(piece.text.size() + 8);
      for (char c : piece.text) {
        if (c == ' ') {
          replaced.append(replacement_utf8_);
        } else {
          replaced.push_back(c);
        }
      }
      const bool starts_with_replacement = replaced.rfind(replacement_utf8_, 0) == 0;
      const bool prepend = scheme_ == PrependScheme::kAlways ||
                           (scheme_ == PrependScheme::kFirst && piece.at_text_start);
      if (prepend && !starts_with_replacement) replaced.insert(0, replacement_utf8_);
      piece.text = std::move(replaced);
    }
    if (!split_) return;
    const char32_t replacement = replacement_;
    Resplit(pieces, [&](const std::string& text) {
      return ApplySplitBehavior(CharMatches(text, [&](char32_t c) { return c == replacement; }),
                                SplitBehavior::kMergedWithNext);
    });
  }

 private:
  char32_t replacement_;
  std::string replacement_utf8_;
  PrependScheme scheme_;
  bool split_;
};

class SequencePreTokenizer : public PreTokenizer {
 public:
  explicit SequencePreTokenizer(std::vector<std::unique_ptr<PreTokenizer>> steps)
      : steps_(std::move(steps)) {}
  void PreTokenize(std::vector<PreToken>& pieces) const override {
    for (const auto& step : steps_) step->PreTokenize(pieces);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> steps_;
};

absl::StatusOr<std::unique_ptr<Regex>> CompileIn(const std::string& pattern, bool literal,
                                                 const std::string& where) {
  auto regex = Regex::Compile(pattern, literal);
  if (!regex.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": ", regex.status().message()));
  }
  return regex;
}

absl::StatusOr<std::unique_ptr<PreTokenizer>> ParseMetaspace(const Json& json,
                                                             const std::string& where) {
  LOOM_ASSIGN_OR_RETURN(char32_t replacement, CharField(json, "replacement", where, U'\u2581'));
  LOOM_ASSIGN_OR_RETURN(bool split, JsonBool(json, "split", TokenizerPlace(where), true));
  // Files older than prepend_scheme only have add_prefix_space.
  LOOM_ASSIGN_OR_RETURN(bool add_prefix_space,
                        JsonBool(json, "add_prefix_space", TokenizerPlace(where), true));
  LOOM_ASSIGN_OR_RETURN(std::string scheme_name,
                        JsonString(json, "prepend_scheme", TokenizerPlace(where),
                                   add_prefix_space ? "always" : "never"));
  PrependScheme scheme;
  if (scheme_name == "always") {
    scheme = PrependScheme::kAlways;
  } else if (scheme_name == "first") {
    scheme = PrependScheme::kFirst;
  } else if (scheme_name == "never") {
    scheme = PrependScheme::kNever;
  } else {
    return absl::UnimplementedError(
        absl::StrCat("unsupported prepend_scheme \"", scheme_name, "\" at ", where));
  }
  return std::make_unique<MetaspacePreTokenizer>(replacement, scheme, split);
}

}  // namespace

absl::StatusOr<std::unique_ptr<PreTokenizer>> ParsePreTokenizer(const Json& json,
                                                                const std::string& where) {
  LOOM_ASSIGN_OR_RETURN(const std::string type, ComponentType(json, where));
  if (type == "ByteLevel") {
    LOOM_ASSIGN_OR_RETURN(bool add_prefix_space,
                          JsonBool(json, "add_prefix_space", TokenizerPlace(where), true));
    LOOM_ASSIGN_OR_RETURN(bool use_regex, JsonBool(json, "use_regex", TokenizerPlace(where), true));
    std::unique_ptr<Regex> regex;
    if (use_regex) {
      LOOM_ASSIGN_OR_RETURN(regex, CompileIn(kGpt2Pattern, false, where));
    }
    return std::make_unique<ByteLevelPreTokenizer>(add_prefix_space, std::move(regex));
  }
  if (type == "Split") {
    LOOM_ASSIGN_OR_RETURN(PatternSpec pattern, PatternField(json, "pattern", where));
    LOOM_ASSIGN_OR_RETURN(std::string behavior_name,
                          JsonString(json, "behavior", TokenizerPlace(where), ""));
    LOOM_ASSIGN_OR_RETURN(SplitBehavior behavior,
                          ParseSplitBehavior(behavior_name, where + ".behavior"));
    LOOM_ASSIGN_OR_RETURN(bool invert, JsonBool(json, "invert", TokenizerPlace(where), false));
    LOOM_ASSIGN_OR_RETURN(auto regex, CompileIn(pattern.text, !pattern.is_regex, where));
    return std::make_unique<SplitPreTokenizer>(std::move(regex), behavior, invert);
  }
  if (type == "Metaspace") return ParseMetaspace(json, where);
  if (type == "Digits") {
    LOOM_ASSIGN_OR_RETURN(bool individual,
                          JsonBool(json, "individual_digits", TokenizerPlace(where), false));
    return std::make_unique<CharSplitPreTokenizer>(
        IsNumeric, individual ? SplitBehavior::kIsolated : SplitBehavior::kContiguous);
  }
  if (type == "WhitespaceSplit") {
    return std::make_unique<CharSplitPreTokenizer>(IsWhitespace, SplitBehavior::kRemoved);
  }
  if (type == "Whitespace") {
    LOOM_ASSIGN_OR_RETURN(auto regex, CompileIn(kWordsPattern, false, where));
    // Keep the matches, drop the gaps: HF's Invert + Removed.
    return std::make_unique<SplitPreTokenizer>(std::move(regex), SplitBehavior::kRemoved, true);
  }
  if (type == "Punctuation") {
    LOOM_ASSIGN_OR_RETURN(std::string behavior_name,
                          JsonString(json, "behavior", TokenizerPlace(where), "Isolated"));
    LOOM_ASSIGN_OR_RETURN(SplitBehavior behavior,
                          ParseSplitBehavior(behavior_name, where + ".behavior"));
    return std::make_unique<CharSplitPreTokenizer>(IsPunctuation, behavior);
  }
  if (type == "CharDelimiterSplit") {
    LOOM_ASSIGN_OR_RETURN(char32_t delimiter, CharField(json, "delimiter", where, U' '));
    return std::make_unique<CharSplitPreTokenizer>(
        [delimiter](char32_t c) { return c == delimiter; }, SplitBehavior::kRemoved);
  }
  if (type == "BertPreTokenizer") {
    std::vector<std::unique_ptr<PreTokenizer>> steps;
    steps.push_back(std::make_unique<CharSplitPreTokenizer>(IsWhitespace, SplitBehavior::kRemoved));
    steps.push_back(
        std::make_unique<CharSplitPreTokenizer>(IsPunctuation, SplitBehavior::kIsolated));
    return std::make_unique<SequencePreTokenizer>(std::move(steps));
  }
  if (type == "Sequence") {
    LOOM_ASSIGN_OR_RETURN(const Json* items, ArrayField(json, "pretokenizers", where));
    std::vector<std::unique_ptr<PreTokenizer>> steps;
    for (size_t i = 0; i < items->size(); ++i) {
      LOOM_ASSIGN_OR_RETURN(
          auto step,
          ParsePreTokenizer((*items)[i], absl::StrCat(where, ".pretokenizers[", i, "]")));
      steps.push_back(std::move(step));
    }
    return std::make_unique<SequencePreTokenizer>(std::move(steps));
  }
  return absl::UnimplementedError(
      absl::StrCat("unsupported pre_tokenizer type \"", type, "\" at ", where));
}

}  // namespace loom::tokenizer
