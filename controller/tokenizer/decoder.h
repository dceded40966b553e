// Decoders of tokenizer.json: token strings -> text.
//
// Each decoder maps the list of token strings to a new list (HF's decode_chain); the final
// text is the concatenation. Supported types: ByteLevel, ByteFallback, Fuse, Strip, Replace,
// Metaspace, BPEDecoder and Sequence.
#ifndef LOOM_CONTROLLER_TOKENIZER_DECODER_H_
#define LOOM_CONTROLLER_TOKENIZER_DECODER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "controller/tokenizer/json_fields.h"

namespace loom::tokenizer {

class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual void DecodeChain(std::vector<std::string>& tokens) const = 0;
};

absl::StatusOr<std::unique_ptr<Decoder>> ParseDecoder(const Json& json, const std::string& where);

}  // namespace loom::tokenizer

#endif  // LOOM_CONTROLLER_TOKENIZER_DECODER_H_
