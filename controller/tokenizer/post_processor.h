// Post-processors of tokenizer.json: add the special tokens (BOS, EOS, ...) around one
// encoded sequence when the caller asks for special tokens.
//
// Supported types: TemplateProcessing (its "single" template), ByteLevel (offsets only, so
// nothing for ids), BertProcessing, RobertaProcessing and Sequence. Loom encodes single
// sequences; the "pair" templates are parsed for validity but not used.
#ifndef LOOM_CONTROLLER_TOKENIZER_POST_PROCESSOR_H_
#define LOOM_CONTROLLER_TOKENIZER_POST_PROCESSOR_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "controller/tokenizer/json_fields.h"

namespace loom::tokenizer {

class PostProcessor {
 public:
  virtual ~PostProcessor() = default;
  // Wraps `ids` (one sequence) in this processor's special tokens.
  virtual void AddSpecialTokens(std::vector<int32_t>& ids) const = 0;
  // The ids this processor puts before the sequence (BOS for most families).
  virtual std::vector<int32_t> PrefixIds() const = 0;
};

absl::StatusOr<std::unique_ptr<PostProcessor>> ParsePostProcessor(const Json& json,
                                                                  const std::string& where);

}  // namespace loom::tokenizer

#endif  // LOOM_CONTROLLER_TOKENIZER_POST_PROCESSOR_H_
