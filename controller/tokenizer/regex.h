// A compiled PCRE2 pattern (UTF + UCP, JIT when available) that speaks Oniguruma's dialect.
//
// HF `tokenizers` compiles tokenizer.json patterns with Oniguruma. PCRE2 accepts the same
// syntax for every pattern the served families use; the one difference that matters is `\s`,
// which Oniguruma defines as [\t-\r\x85\p{Z}] while PCRE2 also counts U+180E. Patterns are
// rewritten to spell Oniguruma's class explicitly so both engines split text identically.
#ifndef LOOM_CONTROLLER_TOKENIZER_REGEX_H_
#define LOOM_CONTROLLER_TOKENIZER_REGEX_H_

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace loom::tokenizer {

// A half-open byte range of a string and whether a pattern matched it.
struct Span {
  size_t begin = 0;
  size_t end = 0;
  bool is_match = false;
};

class Regex {
 public:
  // `pattern` is an Oniguruma regex; with `literal` it is matched as plain text.
  static absl::StatusOr<std::unique_ptr<Regex>> Compile(std::string_view pattern, bool literal);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Cuts well-formed UTF-8 `text` into consecutive spans covering all of it: the matches and
  // the gaps between them (HF's Pattern::find_matches). Empty text gives one empty gap.
  // Safe to call from several threads at once.
  std::vector<Span> FindMatches(std::string_view text) const;

 private:
  struct Impl;
  explicit Regex(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Rewrites Oniguruma's `\s`/`\S` outside character classes (and `\s` inside them) into
// explicit classes with Oniguruma's meaning. Exposed for tests.
std::string TranslateOnigurumaPattern(std::string_view pattern);

}  // namespace loom::tokenizer

#endif  // LOOM_CONTROLLER_TOKENIZER_REGEX_H_
