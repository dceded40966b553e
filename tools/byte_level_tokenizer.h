// A small byte-level BPE tokenizer in HF tokenizer.json form, for generated test models.
//
// Ids 0..255 are the 256 bytes spelled with GPT-2's byte-to-unicode table (so every text
// round-trips), then a few English merges, then the special tokens as added tokens. HF
// `tokenizers` loads the result; so does any GPT-2-style byte-level BPE reader.
#ifndef LOOM_TOOLS_BYTE_LEVEL_TOKENIZER_H_
#define LOOM_TOOLS_BYTE_LEVEL_TOKENIZER_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace loom {

struct ByteLevelTokenizer {
  std::string tokenizer_json;
  std::string tokenizer_config_json;  // tokenizer_config.json naming the special tokens
  int64_t bos_id = 0;
  int64_t eos_id = 0;
  int64_t pad_id = 0;
  int64_t num_tokens = 0;  // the highest id + 1
};

// The fewest ids a tokenizer needs: the 256 bytes and the special tokens.
int64_t MinByteLevelVocab();

// Builds a tokenizer whose ids all lie below `vocab_size` (merges are dropped to fit).
// InvalidArgument when `vocab_size` < MinByteLevelVocab().
absl::StatusOr<ByteLevelTokenizer> MakeByteLevelTokenizer(int64_t vocab_size,
                                                          int64_t model_max_length);

}  // namespace loom

#endif  // LOOM_TOOLS_BYTE_LEVEL_TOKENIZER_H_
