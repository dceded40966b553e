// A HF `tokenizers` tokenizer.json, encoding and decoding exactly as the Rust library does.
//
// Pipeline of Encode: validate UTF-8 -> cut out added tokens (raw ones, then normalized ones
// on normalized text) -> normalizer -> pre-tokenizer -> BPE model per word -> post-processor
// (BOS/EOS) when add_special_tokens. Decode: ids -> token strings (special ones dropped when
// asked) -> decoder chain -> text.
//
// Supported: model BPE (Unigram, WordPiece and WordLevel are rejected by name); the
// normalizers, pre-tokenizers, post-processors and decoders listed in their headers. Loading
// never half-succeeds: any unsupported component fails with its name and the file's name.
//
// Thread safety: a loaded Tokenizer is immutable apart from an internal, locked word cache;
// Encode and Decode may be called from several threads at once.
#ifndef LOOM_CONTROLLER_TOKENIZER_TOKENIZER_H_
#define LOOM_CONTROLLER_TOKENIZER_TOKENIZER_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "controller/tokenizer/added_vocabulary.h"
#include "controller/tokenizer/bpe_model.h"
#include "controller/tokenizer/decoder.h"
#include "controller/tokenizer/normalizer.h"
#include "controller/tokenizer/post_processor.h"
#include "controller/tokenizer/pre_tokenizer.h"

namespace loom::tokenizer {

class Tokenizer {
 public:
  // Loads a tokenizer.json file.
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromFile(const std::string& path);
  // Loads `dir`/tokenizer.json and, when present, takes the BOS/EOS tokens named by
  // `dir`/tokenizer_config.json (bos_token, eos_token as strings or AddedToken objects).
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromModelDir(const std::string& dir);
  // Parses tokenizer.json text; `source` names it in error messages.
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromJson(std::string_view json_text,
                                                             const std::string& source);

  // InvalidArgument (naming the byte offset) when `text` is not valid UTF-8.
  absl::StatusOr<std::vector<int32_t>> Encode(std::string_view text, bool add_special_tokens) const;
  // NotFound when an id names no token (HF silently drops such ids; Loom reports them).
  absl::StatusOr<std::string> Decode(std::span<const int32_t> ids, bool skip_special_tokens) const;

  std::optional<int32_t> TokenToId(std::string_view token) const;
  std::optional<std::string> IdToToken(int32_t id) const;
  // One past the largest id of the model vocabulary and the added tokens: the size an
  // embedding table needs.
  int32_t vocab_size() const { return vocab_size_; }
  bool IsSpecial(int32_t id) const { return id >= 0 && id < vocab_size_ && is_special_[id]; }
  // True for byte-fallback tokens ("<0xE4>"): a run of them decodes as a whole (one U+FFFD per
  // byte when invalid), so streaming must wait for the run to end.
  bool IsByteFallbackToken(int32_t id) const {
    return id >= 0 && id < vocab_size_ && is_byte_token_[id];
  }
  // The ids of the added tokens marked special, in file order.
  const std::vector<int32_t>& special_token_ids() const { return special_ids_; }
  // From tokenizer_config.json when loaded by FromModelDir; otherwise BOS is what the
  // post-processor puts first, and EOS the first added token among the families' usual names.
  std::optional<int32_t> bos_token_id() const { return bos_id_; }
  std::optional<int32_t> eos_token_id() const { return eos_id_; }

 private:
  Tokenizer() = default;
  absl::Status Load(const Json& root);
  absl::Status LoadAddedTokens(const Json& root);
  void ChooseDefaultBosEos();
  const std::string* TokenString(int32_t id) const;

  std::unique_ptr<Normalizer> normalizer_;
  std::unique_ptr<PreTokenizer> pre_tokenizer_;
  std::unique_ptr<BpeModel> model_;
  std::unique_ptr<PostProcessor> post_processor_;
  std::unique_ptr<Decoder> decoder_;
  std::unique_ptr<AddedVocabulary> added_;
  absl::flat_hash_map<int32_t, std::string> added_by_id_;
  absl::flat_hash_map<std::string, int32_t> added_by_content_;
  std::vector<bool> is_special_;
  std::vector<bool> is_byte_token_;
  std::vector<int32_t> special_ids_;
  int32_t vocab_size_ = 0;
  std::optional<int32_t> bos_id_;
  std::optional<int32_t> eos_id_;
};

}  // namespace loom::tokenizer

#endif  // LOOM_CONTROLLER_TOKENIZER_TOKENIZER_H_
