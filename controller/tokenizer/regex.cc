#include "controller/tokenizer/regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <utility>

#include "common/status.h"
#include "controller/tokenizer/utf8.h"

namespace loom::tokenizer {
namespace {

// Oniguruma's Unicode \s: TAB..CR, NEL and the separators (Zs, Zl, Zp).
constexpr std::string_view kSpaceClassBody = "\\t-\\r\\x{85}\\p{Z}";

struct MatchDataDeleter {
  void operator()(pcre2_match_data* d) const { pcre2_match_data_free(d); }
};

}  // namespace

struct Regex::Impl {
  pcre2_code* code = nullptr;  // null for a literal, which plain substring search handles
  std::string literal;
  bool jit = false;
  ~Impl() { pcre2_code_free(code); }
};

std::string TranslateOnigurumaPattern(std::string_view pattern) {
  std::string out;
  out.reserve(pattern.size() + 32);
  bool in_class = false;
  for (size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    if (c == '\\' && i + 1 < pattern.size()) {
      const char next = pattern[i + 1];
      if (next == 's') {
        if (in_class) {
          out.append(kSpaceClassBody);
        } else {
          out.append("[").append(kSpaceClassBody).append("]");
        }
      } else if (next == 'S' && !in_class) {
        out.append("[^").append(kSpaceClassBody).append("]");
      } else {
        out.push_back(c);
        out.push_back(next);
      }
      ++i;
      continue;
    }
    if (c == '[' && !in_class) {
      in_class = true;
      out.push_back(c);
      // A ']' right after '[' or '[^' is a literal member, not the end of the class.
      if (i + 1 < pattern.size() && pattern[i + 1] == '^') out.push_back(pattern[++i]);
      if (i + 1 < pattern.size() && pattern[i + 1] == ']') out.push_back(pattern[++i]);
      continue;
    }
    if (c == ']' && in_class) in_class = false;
    out.push_back(c);
  }
  return out;
}

Regex::Regex(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Regex::~Regex() = default;

absl::StatusOr<std::unique_ptr<Regex>> Regex::Compile(std::string_view pattern, bool literal) {
  if (FindInvalidUtf8(pattern) != std::string_view::npos) {
    return absl::InvalidArgumentError("regex pattern is not valid UTF-8");
  }
  auto impl = std::make_unique<Impl>();
  if (literal) {
    impl->literal = std::string(pattern);
    return std::unique_ptr<Regex>(new Regex(std::move(impl)));
  }
  const std::string source = TranslateOnigurumaPattern(pattern);
  const uint32_t options = PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK;
  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  impl->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(source.data()), source.size(), options,
                             &error_code, &error_offset, nullptr);
  if (impl->code == nullptr) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error_code, message, sizeof(message));
    return absl::InvalidArgumentError(absl::StrCat("cannot compile regex '", std::string(pattern),
                                                   "' at offset ", error_offset, ": ",
                                                   reinterpret_cast<const char*>(message)));
  }
  impl->jit = pcre2_jit_compile(impl->code, PCRE2_JIT_COMPLETE) == 0;
  return std::unique_ptr<Regex>(new Regex(std::move(impl)));
}

std::vector<Span> Regex::FindMatches(std::string_view text) const {
  std::vector<Span> spans;
  if (text.empty()) {
    spans.push_back({0, 0, false});
    return spans;
  }
  if (impl_->code == nullptr) {
    size_t prev = 0;
    const std::string_view needle = impl_->literal;
    for (size_t at = needle.empty() ? std::string_view::npos : text.find(needle);
         at != std::string_view::npos; at = text.find(needle, prev)) {
      if (at > prev) spans.push_back({prev, at, false});
      spans.push_back({at, at + needle.size(), true});
      prev = at + needle.size();
    }
    if (prev < text.size()) spans.push_back({prev, text.size(), false});
    return spans;
  }
  // Match data is per call so one compiled pattern serves concurrent encodes.
  std::unique_ptr<pcre2_match_data, MatchDataDeleter> data(
      pcre2_match_data_create_from_pattern(impl_->code, nullptr));
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t prev = 0;    // end of the last span pushed
  size_t search = 0;  // where the next search starts
  while (search <= text.size()) {
    const int rc = impl_->jit ? pcre2_jit_match(impl_->code, subject, text.size(), search,
                                                PCRE2_NO_UTF_CHECK, data.get(), nullptr)
                              : pcre2_match(impl_->code, subject, text.size(), search,
                                            PCRE2_NO_UTF_CHECK, data.get(), nullptr);
    if (rc < 0) break;  // no match (or a resource limit): the rest is one gap
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(data.get());
    const size_t begin = ovector[0], end = ovector[1];
    if (begin == end) {
      // Empty matches split nothing; step one character past them like Oniguruma's iterator.
      if (begin >= text.size()) break;
      search = begin + Utf8SequenceLength(static_cast<uint8_t>(text[begin]));
      continue;
    }
    if (begin > prev) spans.push_back({prev, begin, false});
    spans.push_back({begin, end, true});
    prev = search = end;
  }
  if (prev < text.size()) spans.push_back({prev, text.size(), false});
  return spans;
}

}  // namespace loom::tokenizer
