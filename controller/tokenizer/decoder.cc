#include "controller/tokenizer/decoder.h"

#include <utility>

#include "common/status.h"
#include "controller/tokenizer/byte_level_alphabet.h"
#include "controller/tokenizer/regex.h"
#include "controller/tokenizer/utf8.h"

namespace loom::tokenizer {
namespace {

constexpr char kReplacementChar[] = "\xEF\xBF\xBD";

// Joins all tokens, mapping byte-level characters back to bytes. A token with a character
// outside the table (an added token such as "<|im_end|>" spelled plainly) keeps its own bytes.
class ByteLevelDecoder : public Decoder {
 public:
  void DecodeChain(std::vector<std::string>& tokens) const override {
    std::string bytes;
    std::string token_bytes;
    for (const std::string& token : tokens) {
      token_bytes.clear();
      bool all_mapped = true;
      size_t pos = 0;
      while (pos < token.size()) {
        const int b = CharToByte(NextCodePoint(token, pos));
        if (b < 0) {
          all_mapped = false;
          break;
        }
        token_bytes.push_back(static_cast<char>(b));
      }
      bytes.append(all_mapped ? token_bytes : token);
    }
    tokens.assign(1, Utf8Lossy(bytes));
  }
};

// <0xXX> tokens become bytes; each run of them is one string, or one U+FFFD per byte when
// the run is not valid UTF-8.
class ByteFallbackDecoder : public Decoder {
 public:
  void DecodeChain(std::vector<std::string>& tokens) const override {
    std::vector<std::string> out;
    out.reserve(tokens.size());
    std::string run;
    auto flush = [&] {
      if (run.empty()) return;
      if (FindInvalidUtf8(run) == std::string::npos) {
        out.push_back(run);
      } else {
        for (size_t i = 0; i < run.size(); ++i) out.emplace_back(kReplacementChar);
      }
      run.clear();
    };
    for (std::string& token : tokens) {
      int byte = ParseByteToken(token);
      if (byte >= 0) {
        run.push_back(static_cast<char>(byte));
      } else {
        flush();
        out.push_back(std::move(token));
      }
    }
    flush();
    tokens = std::move(out);
  }

 private:
  static int HexDigit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }
  // "<0xXX>" -> XX; Rust's u8::from_str_radix also takes "+X".
  static int ParseByteToken(const std::string& token) {
    if (token.size() != 6 || token.compare(0, 3, "<0x") != 0 || token[5] != '>') return -1;
    const int hi = HexDigit(token[3]), lo = HexDigit(token[4]);
    if (token[3] == '+' && lo >= 0) return lo;
    if (hi < 0 || lo < 0) return -1;
    return hi * 16 + lo;
  }
};

class FuseDecoder : public Decoder {
 public:
  void DecodeChain(std::vector<std::string>& tokens) const override {
    std::string joined;
    for (const std::string& token : tokens) joined.append(token);
    tokens.assign(1, std::move(joined));
  }
};

// Removes up to `start` leading and `stop` trailing copies of one character from each token.
class StripDecoder : public Decoder {
 public:
  StripDecoder(char32_t content, size_t start, size_t stop)
      : content_(content), start_(start), stop_(stop) {}
  void DecodeChain(std::vector<std::string>& tokens) const override {
    for (std::string& token : tokens) {
      size_t begin = 0, end = token.size();
      for (size_t i = 0; i < start_ && begin < end; ++i) {
        size_t next = begin;
        if (NextCodePoint(token, next) != content_) break;
        begin = next;
      }
      for (size_t i = 0; i < stop_ && end > begin; ++i) {
        size_t prev;
        if (PreviousCodePoint(token, end, prev) != content_) break;
        end = prev;
      }
      token = token.substr(begin, end - begin);
    }
  }

 private:
  char32_t content_;
  size_t start_, stop_;
};

class ReplaceDecoder : public Decoder {
 public:
  ReplaceDecoder(std::unique_ptr<Regex> pattern, std::string content)
      : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void DecodeChain(std::vector<std::string>& tokens) const override {
    for (std::string& token : tokens) {
      std::string out;
      for (const Span& span : pattern_->FindMatches(token)) {
        if (span.is_match) {
          out.append(content_);
        } else {
          out.append(token, span.begin, span.end - span.begin);
        }
      }
      token = std::move(out);
    }
  }

 private:
  std::unique_ptr<Regex> pattern_;
  std::string content_;
};

// The replacement character becomes a space, except in the first token when a prefix space
// was added at encode time (HF drops every replacement character of that token).
class MetaspaceDecoder : public Decoder {
 public:
  MetaspaceDecoder(char32_t replacement, bool drop_in_first)
      : replacement_(replacement), drop_in_first_(drop_in_first) {}
  void DecodeChain(std::vector<std::string>& tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i) {
      std::string out;
      const std::string& token = tokens[i];
      size_t pos = 0;
      while (pos < token.size()) {
        const size_t at = pos;
        if (NextCodePoint(token, pos) == replacement_) {
          if (i != 0 || !drop_in_first_) out.push_back(' ');
        } else {
          out.append(token, at, pos - at);
        }
      }
      tokens[i] = std::move(out);
    }
  }

 private:
  char32_t replacement_;
  bool drop_in_first_;
};

// BPE end-of-word suffixes become spaces (none after the last token).
class BpeSuffixDecoder : public Decoder {
 public:
  explicit BpeSuffixDecoder(std::string suffix) : suffix_(std::move(suffix)) {}
  void DecodeChain(std::vector<std::string>& tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i) {
      const std::string replacement = i + 1 == tokens.size() ? "" : " ";
      std::string out;
      size_t pos = 0;
      while (!suffix_.empty()) {
        const size_t found = tokens[i].find(suffix_, pos);
        if (found == std::string::npos) break;
        out.append(tokens[i], pos, found - pos).append(replacement);
        pos = found + suffix_.size();
      }
      out.append(tokens[i], pos, std::string::npos);
      tokens[i] = std::move(out);
    }
  }

 private:
  std::string suffix_;
};

class SequenceDecoder : public Decoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> steps)
      : steps_(std::move(steps)) {}
  void DecodeChain(std::vector<std::string>& tokens) const override {
    for (const auto& step : steps_) step->DecodeChain(tokens);
  }

 private:
  std::vector<std::unique_ptr<Decoder>> steps_;
};

absl::StatusOr<std::unique_ptr<Decoder>> ParseMetaspaceDecoder(const Json& json,
                                                               const std::string& where) {
  LOOM_ASSIGN_OR_RETURN(char32_t replacement, CharField(json, "replacement", where, U'\u2581'));
  LOOM_ASSIGN_OR_RETURN(bool add_prefix_space,
                        JsonBool(json, "add_prefix_space", TokenizerPlace(where), true));
  LOOM_ASSIGN_OR_RETURN(std::string scheme,
                        JsonString(json, "prepend_scheme", TokenizerPlace(where),
                                   add_prefix_space ? "always" : "never"));
  if (scheme != "always" && scheme != "first" && scheme != "never") {
    return absl::UnimplementedError(
        absl::StrCat("unsupported prepend_scheme \"", scheme, "\" at ", where));
  }
  return std::make_unique<MetaspaceDecoder>(replacement, scheme != "never");
}

}  // namespace

absl::StatusOr<std::unique_ptr<Decoder>> ParseDecoder(const Json& json, const std::string& where) {
  LOOM_ASSIGN_OR_RETURN(const std::string type, ComponentType(json, where));
  if (type == "ByteLevel") return std::make_unique<ByteLevelDecoder>();
  if (type == "ByteFallback") return std::make_unique<ByteFallbackDecoder>();
  if (type == "Fuse") return std::make_unique<FuseDecoder>();
  if (type == "Metaspace") return ParseMetaspaceDecoder(json, where);
  if (type == "Strip") {
    LOOM_ASSIGN_OR_RETURN(char32_t content, CharField(json, "content", where, U' '));
    LOOM_ASSIGN_OR_RETURN(int64_t start, JsonInt(json, "start", TokenizerPlace(where), 0));
    LOOM_ASSIGN_OR_RETURN(int64_t stop, JsonInt(json, "stop", TokenizerPlace(where), 0));
    if (start < 0 || stop < 0) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": start/stop must be >= 0"));
    }
    return std::make_unique<StripDecoder>(content, start, stop);
  }
  if (type == "Replace") {
    LOOM_ASSIGN_OR_RETURN(PatternSpec pattern, PatternField(json, "pattern", where));
    LOOM_ASSIGN_OR_RETURN(std::string content,
                          JsonString(json, "content", TokenizerPlace(where), ""));
    auto regex = Regex::Compile(pattern.text, !pattern.is_regex);
    if (!regex.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": ", regex.status().message()));
    }
    return std::make_unique<ReplaceDecoder>(*std::move(regex), std::move(content));
  }
  if (type == "BPEDecoder") {
    LOOM_ASSIGN_OR_RETURN(std::string suffix,
                          JsonString(json, "suffix", TokenizerPlace(where), "</w>"));
    return std::make_unique<BpeSuffixDecoder>(std::move(suffix));
  }
  if (type == "Sequence") {
    LOOM_ASSIGN_OR_RETURN(const Json* items, ArrayField(json, "decoders", where));
    std::vector<std::unique_ptr<Decoder>> steps;
    for (size_t i = 0; i < items->size(); ++i) {
      LOOM_ASSIGN_OR_RETURN(auto step,
                            ParseDecoder((*items)[i], absl::StrCat(where, ".decoders[", i, "]")));
      steps.push_back(std::move(step));
    }
    return std::make_unique<SequenceDecoder>(std::move(steps));
  }
  return absl::UnimplementedError(
      absl::StrCat("unsupported decoder type \"", type, "\" at ", where));
}

}  // namespace loom::tokenizer
