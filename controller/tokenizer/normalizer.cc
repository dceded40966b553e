#include "controller/tokenizer/normalizer.h"

#include <unicode/bytestream.h>
#include <unicode/casemap.h>
#include <unicode/normalizer2.h>

#include <utility>
#include <vector>

#include "common/status.h"
#include "controller/tokenizer/byte_level_alphabet.h"
#include "controller/tokenizer/regex.h"
#include "controller/tokenizer/unicode_props.h"
#include "controller/tokenizer/utf8.h"

namespace loom::tokenizer {
namespace {

bool IsAscii(const std::string& text) {
  for (unsigned char c : text) {
    if (c >= 0x80) return false;
  }
  return true;
}

// NFC / NFD / NFKC / NFKD through ICU's UTF-8 entry points.
class UnicodeNormalizer : public Normalizer {
 public:
  explicit UnicodeNormalizer(const icu::Normalizer2* form) : form_(form) {}
  void Normalize(std::string& text) const override {
    if (IsAscii(text)) return;  // every form leaves ASCII alone
    UErrorCode status = U_ZERO_ERROR;
    if (form_->isNormalizedUTF8(text, status) && U_SUCCESS(status)) return;
    std::string out;
    icu::StringByteSink<std::string> sink(&out, static_cast<int32_t>(text.size()));
    status = U_ZERO_ERROR;
    form_->normalizeUTF8(0, text, sink, nullptr, status);
    if (U_SUCCESS(status)) text = std::move(out);
  }

 private:
  const icu::Normalizer2* form_;
};

class LowercaseNormalizer : public Normalizer {
 public:
  void Normalize(std::string& text) const override {
    std::string out;
    icu::StringByteSink<std::string> sink(&out, static_cast<int32_t>(text.size()));
    UErrorCode status = U_ZERO_ERROR;
    // The root locale: Rust's str::to_lowercase is locale-independent too.
    icu::CaseMap::utf8ToLower("", 0, text, sink, nullptr, status);
    if (U_SUCCESS(status)) text = std::move(out);
  }
};

class PrependNormalizer : public Normalizer {
 public:
  explicit PrependNormalizer(std::string prefix) : prefix_(std::move(prefix)) {}
  void Normalize(std::string& text) const override {
    if (!text.empty()) text.insert(0, prefix_);  // HF leaves empty pieces empty
  }

 private:
  std::string prefix_;
};

class ReplaceNormalizer : public Normalizer {
 public:
  ReplaceNormalizer(std::unique_ptr<Regex> pattern, std::string content)
      : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void Normalize(std::string& text) const override {
    std::string out;
    out.reserve(text.size() + text.size() / 4);
    for (const Span& span : pattern_->FindMatches(text)) {
      if (span.is_match) {
        out.append(content_);
      } else {
        out.append(text, span.begin, span.end - span.begin);
      }
    }
    text = std::move(out);
  }

 private:
  std::unique_ptr<Regex> pattern_;
  std::string content_;
};

class StripNormalizer : public Normalizer {
 public:
  StripNormalizer(bool left, bool right) : left_(left), right_(right) {}
  void Normalize(std::string& text) const override {
    size_t begin = 0, end = text.size();
    if (right_) {
      size_t start;
      while (end > 0 && IsWhitespace(PreviousCodePoint(text, end, start))) end = start;
    }
    if (left_) {
      size_t pos = begin;
      while (pos < end) {
        const size_t at = pos;
        if (!IsWhitespace(NextCodePoint(text, pos))) {
          pos = at;
          break;
        }
      }
      begin = pos;
    }
    text = text.substr(begin, end - begin);
  }

 private:
  bool left_, right_;
};

class StripAccentsNormalizer : public Normalizer {
 public:
  void Normalize(std::string& text) const override {
    std::string out;
    out.reserve(text.size());
    size_t pos = 0;
    while (pos < text.size()) {
      const size_t at = pos;
      if (!IsMark(NextCodePoint(text, pos))) out.append(text, at, pos - at);
    }
    text = std::move(out);
  }
};

class ByteLevelNormalizer : public Normalizer {
 public:
  void Normalize(std::string& text) const override {
    std::string out;
    out.reserve(text.size() * 2);
    AppendByteLevel(text, out);
    text = std::move(out);
  }
};

class SequenceNormalizer : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> steps)
      : steps_(std::move(steps)) {}
  void Normalize(std::string& text) const override {
    for (const auto& step : steps_) step->Normalize(text);
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> steps_;
};

absl::StatusOr<const icu::Normalizer2*> IcuForm(const std::string& type) {
  UErrorCode status = U_ZERO_ERROR;
  const icu::Normalizer2* form = nullptr;
  if (type == "NFC") form = icu::Normalizer2::getNFCInstance(status);
  if (type == "NFD") form = icu::Normalizer2::getNFDInstance(status);
  if (type == "NFKC") form = icu::Normalizer2::getNFKCInstance(status);
  if (type == "NFKD") form = icu::Normalizer2::getNFKDInstance(status);
  if (form == nullptr || U_FAILURE(status)) {
    return absl::InternalError(absl::StrCat("ICU has no ", type, " data: ", u_errorName(status)));
  }
  return form;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Normalizer>> ParseNormalizer(const Json& json,
                                                            const std::string& where) {
  LOOM_ASSIGN_OR_RETURN(const std::string type, ComponentType(json, where));
  if (type == "NFC" || type == "NFD" || type == "NFKC" || type == "NFKD") {
    LOOM_ASSIGN_OR_RETURN(const icu::Normalizer2* form, IcuForm(type));
    return std::make_unique<UnicodeNormalizer>(form);
  }
  if (type == "Lowercase") return std::make_unique<LowercaseNormalizer>();
  if (type == "StripAccents") return std::make_unique<StripAccentsNormalizer>();
  if (type == "ByteLevel") return std::make_unique<ByteLevelNormalizer>();
  if (type == "Prepend") {
    LOOM_ASSIGN_OR_RETURN(std::string prefix,
                          JsonString(json, "prepend", TokenizerPlace(where), ""));
    return std::make_unique<PrependNormalizer>(std::move(prefix));
  }
  if (type == "Replace") {
    LOOM_ASSIGN_OR_RETURN(PatternSpec pattern, PatternField(json, "pattern", where));
    LOOM_ASSIGN_OR_RETURN(std::string content,
                          JsonString(json, "content", TokenizerPlace(where), ""));
    auto regex = Regex::Compile(pattern.text, !pattern.is_regex);
    if (!regex.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ".pattern: ", regex.status().message()));
    }
    return std::make_unique<ReplaceNormalizer>(*std::move(regex), std::move(content));
  }
  if (type == "Strip") {
    LOOM_ASSIGN_OR_RETURN(bool left, JsonBool(json, "strip_left", TokenizerPlace(where), true));
    LOOM_ASSIGN_OR_RETURN(bool right, JsonBool(json, "strip_right", TokenizerPlace(where), true));
    return std::make_unique<StripNormalizer>(left, right);
  }
  if (type == "Sequence") {
    LOOM_ASSIGN_OR_RETURN(const Json* items, ArrayField(json, "normalizers", where));
    std::vector<std::unique_ptr<Normalizer>> steps;
    for (size_t i = 0; i < items->size(); ++i) {
      LOOM_ASSIGN_OR_RETURN(
          auto step, ParseNormalizer((*items)[i], absl::StrCat(where, ".normalizers[", i, "]")));
      steps.push_back(std::move(step));
    }
    return std::make_unique<SequenceNormalizer>(std::move(steps));
  }
  return absl::UnimplementedError(
      absl::StrCat("unsupported normalizer type \"", type, "\" at ", where));
}

}  // namespace loom::tokenizer
