// Normalizers of tokenizer.json: text -> text rewrites applied before pre-tokenization.
//
// Supported types: NFC, NFD, NFKC, NFKD (ICU), Lowercase, Prepend, Replace, Strip,
// StripAccents, ByteLevel and Sequence. Anything else (Precompiled, BertNormalizer, ...) is
// rejected at load time with its name, so a tokenizer is never half-applied.
#ifndef LOOM_CONTROLLER_TOKENIZER_NORMALIZER_H_
#define LOOM_CONTROLLER_TOKENIZER_NORMALIZER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "controller/tokenizer/json_fields.h"

namespace loom::tokenizer {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  // Rewrites well-formed UTF-8 `text` in place; the result is well-formed UTF-8.
  virtual void Normalize(std::string& text) const = 0;
};

// `where` names the object's place in the file for error messages.
absl::StatusOr<std::unique_ptr<Normalizer>> ParseNormalizer(const Json& json,
                                                            const std::string& where);

}  // namespace loom::tokenizer

#endif  // LOOM_CONTROLLER_TOKENIZER_NORMALIZER_H_
