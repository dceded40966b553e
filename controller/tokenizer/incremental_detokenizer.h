// Streaming detokenization: ids arrive one at a time, text leaves in deltas.
//
// Decoding ids one by one is wrong in two ways: a character split over several byte tokens
// would come out as U+FFFD pieces, and decoders that look at neighbours (Metaspace's leading
// space, Strip, byte-level UTF-8 joining) would change earlier text. The usual remedy (vLLM,
// HF DecodeStream): keep two offsets into the ids. [prefix_offset, read_offset) is a short
// window of already-emitted tokens that gives context; each new id decodes the window with and
// without the new tokens and emits only the difference, and only once the text no longer ends
// in U+FFFD (a UTF-8 sequence still waiting for its tail). The window then slides forward.
// Byte-fallback tokens ("<0xE4>") are held until their run ends, because HF decodes a run as
// a whole: one more byte can turn an already valid run into U+FFFDs.
//
// Invariant (tested): the concatenation of every Next() delta and the final Flush() equals
// Tokenizer::Decode of all the ids, and every delta is valid UTF-8.
//
// Not thread-safe: one instance per sequence.
#ifndef LOOM_CONTROLLER_TOKENIZER_INCREMENTAL_DETOKENIZER_H_
#define LOOM_CONTROLLER_TOKENIZER_INCREMENTAL_DETOKENIZER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "controller/tokenizer/tokenizer.h"

namespace loom::tokenizer {

class IncrementalDetokenizer {
 public:
  // `tokenizer` must outlive this object.
  IncrementalDetokenizer(const Tokenizer* tokenizer, bool skip_special_tokens);

  // Adds one id; returns the newly final text (often empty). NotFound for an unknown id.
  absl::StatusOr<std::string> Next(int32_t id);

  // Ends the stream: returns whatever text is still held back (e.g. a byte sequence that
  // never completed). Call once, after the last Next().
  absl::StatusOr<std::string> Flush();

 private:
  const Tokenizer* tokenizer_;
  bool skip_special_tokens_;
  std::vector<int32_t> ids_;  // every id so far (Flush decodes them all once)
  size_t prefix_offset_ = 0;
  size_t read_offset_ = 0;
  size_t emitted_bytes_ = 0;  // bytes of Decode(generated ids) already returned
};

}  // namespace loom::tokenizer

#endif  // LOOM_CONTROLLER_TOKENIZER_INCREMENTAL_DETOKENIZER_H_
