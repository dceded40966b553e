#include "controller/tokenizer/tokenizer.h"

#include <filesystem>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "common/status.h"
#include "controller/tokenizer/utf8.h"

namespace loom::tokenizer {
namespace {

absl::Status WithSource(const absl::Status& status, const std::string& source) {
  return absl::Status(status.code(), absl::StrCat(source, ": ", status.message()));
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) return absl::DataLossError(absl::StrCat("cannot read ", path));
  return buffer.str();
}

// A component that may be null or absent in the file.
const Json* Optional(const Json& root, const char* key) {
  auto it = root.find(key);
  return it == root.end() || it->is_null() ? nullptr : &*it;
}

// tokenizer_config.json names tokens either as strings or as AddedToken objects.
std::optional<std::string> ConfigTokenName(const Json& config, const char* key) {
  auto it = config.find(key);
  if (it == config.end()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object()) {
    auto content = it->find("content");
    if (content != it->end() && content->is_string()) return content->get<std::string>();
  }
  return std::nullopt;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromFile(const std::string& path) {
  LOOM_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  return FromJson(text, path);
}

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromModelDir(const std::string& dir) {
  const std::string path = (std::filesystem::path(dir) / "tokenizer.json").string();
  LOOM_ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> tokenizer, FromFile(path));
  const std::string config_path = (std::filesystem::path(dir) / "tokenizer_config.json").string();
  std::error_code error;
  if (!std::filesystem::exists(config_path, error)) return tokenizer;
  LOOM_ASSIGN_OR_RETURN(std::string text, ReadFile(config_path));
  const Json config = Json::parse(text, nullptr, false);
  if (config.is_discarded() || !config.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(config_path, ": not a JSON object"));
  }
  if (auto bos = ConfigTokenName(config, "bos_token"))
    tokenizer->bos_id_ = tokenizer->TokenToId(*bos);
  if (auto eos = ConfigTokenName(config, "eos_token"))
    tokenizer->eos_id_ = tokenizer->TokenToId(*eos);
  return tokenizer;
}

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromJson(std::string_view json_text,
                                                               const std::string& source) {
  const Json root = Json::parse(json_text, nullptr, false);
  if (root.is_discarded()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": malformed JSON"));
  }
  if (!root.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": not a JSON object"));
  }
  std::unique_ptr<Tokenizer> tokenizer(new Tokenizer());
  if (absl::Status status = tokenizer->Load(root); !status.ok()) {
    return WithSource(status, source);
  }
  return tokenizer;
}

absl::Status Tokenizer::Load(const Json& root) {
  const Json* model = Optional(root, "model");
  if (model == nullptr || !model->is_object()) {
    return absl::InvalidArgumentError("no \"model\" object");
  }
  std::string type = "BPE";  // files written before models were tagged are BPE
  if (const Json* t = Optional(*model, "type")) {
    if (!t->is_string()) return absl::InvalidArgumentError("model.type must be a string");
    type = t->get<std::string>();
  }
  if (type != "BPE") {
    return absl::UnimplementedError(
        absl::StrCat("unsupported model type \"", type, "\" (only BPE is implemented)"));
  }
  LOOM_ASSIGN_OR_RETURN(model_, BpeModel::FromJson(*model));
  if (const Json* j = Optional(root, "normalizer")) {
    LOOM_ASSIGN_OR_RETURN(normalizer_, ParseNormalizer(*j, "normalizer"));
  }
  if (const Json* j = Optional(root, "pre_tokenizer")) {
    LOOM_ASSIGN_OR_RETURN(pre_tokenizer_, ParsePreTokenizer(*j, "pre_tokenizer"));
  }
  if (const Json* j = Optional(root, "post_processor")) {
    LOOM_ASSIGN_OR_RETURN(post_processor_, ParsePostProcessor(*j, "post_processor"));
  }
  if (const Json* j = Optional(root, "decoder")) {
    LOOM_ASSIGN_OR_RETURN(decoder_, ParseDecoder(*j, "decoder"));
  }
  LOOM_RETURN_IF_ERROR(LoadAddedTokens(root));
  ChooseDefaultBosEos();
  return absl::OkStatus();
}

absl::Status Tokenizer::LoadAddedTokens(const Json& root) {
  std::vector<AddedToken> tokens;
  absl::flat_hash_set<std::string> special_contents;
  if (const Json* list = Optional(root, "added_tokens")) {
    if (!list->is_array()) return absl::InvalidArgumentError("added_tokens must be an array");
    for (size_t i = 0; i < list->size(); ++i) {
      const Json& entry = (*list)[i];
      const std::string where = absl::StrCat("added_tokens[", i, "]");
      if (!entry.is_object()) return absl::InvalidArgumentError(where + " must be an object");
      AddedToken token;
      LOOM_ASSIGN_OR_RETURN(token.content, JsonString(entry, "content", TokenizerPlace(where), ""));
      LOOM_ASSIGN_OR_RETURN(int64_t id, JsonInt(entry, "id", TokenizerPlace(where), -1));
      LOOM_ASSIGN_OR_RETURN(token.special,
                            JsonBool(entry, "special", TokenizerPlace(where), false));
      LOOM_ASSIGN_OR_RETURN(token.single_word,
                            JsonBool(entry, "single_word", TokenizerPlace(where), false));
      LOOM_ASSIGN_OR_RETURN(token.lstrip, JsonBool(entry, "lstrip", TokenizerPlace(where), false));
      LOOM_ASSIGN_OR_RETURN(token.rstrip, JsonBool(entry, "rstrip", TokenizerPlace(where), false));
      LOOM_ASSIGN_OR_RETURN(token.normalized,
                            JsonBool(entry, "normalized", TokenizerPlace(where), !token.special));
      if (id < 0 || id > (1 << 24)) {
        return absl::InvalidArgumentError(absl::StrCat(where, " needs an id in [0, 2^24]"));
      }
      if (token.content.empty()) continue;  // HF ignores empty added tokens
      // HF keeps the model's id for a token the vocabulary already has.
      token.id = model_->TokenToId(token.content).value_or(static_cast<int32_t>(id));
      if (token.special) special_contents.insert(token.content);
      // HF spells a normalized token by its normalized content when turning ids back into
      // strings (llama2's "<s>" decodes as "▁<s>", so skip_special_tokens keeps it).
      std::string spelling = token.content;
      if (token.normalized && normalizer_ != nullptr) normalizer_->Normalize(spelling);
      added_by_id_.emplace(token.id, std::move(spelling));
      added_by_content_.emplace(token.content, token.id);
      tokens.push_back(std::move(token));
    }
  }
  vocab_size_ = model_->id_limit();
  for (const AddedToken& token : tokens) vocab_size_ = std::max(vocab_size_, token.id + 1);
  is_special_.assign(vocab_size_, false);
  // HF skips by content: any id spelled like a special token is special.
  for (int32_t id = 0; id < vocab_size_ && !special_contents.empty(); ++id) {
    const std::string* text = TokenString(id);
    if (text != nullptr && special_contents.contains(*text)) is_special_[id] = true;
  }
  for (const AddedToken& token : tokens) {
    if (token.special) special_ids_.push_back(token.id);
  }
  is_byte_token_.assign(vocab_size_, false);
  for (int32_t id = 0; id < vocab_size_; ++id) {
    const std::string* text = TokenString(id);
    is_byte_token_[id] = text != nullptr && text->size() == 6 && text->compare(0, 3, "<0x") == 0 &&
                         (*text)[5] == '>';
  }
  added_ = std::make_unique<AddedVocabulary>(std::move(tokens), normalizer_.get());
  return absl::OkStatus();
}

void Tokenizer::ChooseDefaultBosEos() {
  if (post_processor_ != nullptr) {
    std::vector<int32_t> prefix = post_processor_->PrefixIds();
    if (!prefix.empty()) bos_id_ = prefix.front();
  }
  for (const char* name : {"</s>", "<|end_of_text|>", "<|endoftext|>", "<|im_end|>"}) {
    if (auto id = TokenToId(name)) {
      eos_id_ = id;
      break;
    }
  }
}

const std::string* Tokenizer::TokenString(int32_t id) const {
  if (auto it = added_by_id_.find(id); it != added_by_id_.end()) return &it->second;
  return model_->IdToToken(id);
}

std::optional<int32_t> Tokenizer::TokenToId(std::string_view token) const {
  if (auto it = added_by_content_.find(absl::string_view(token.data(), token.size()));
      it != added_by_content_.end()) {
    return it->second;
  }
  return model_->TokenToId(token);
}

std::optional<std::string> Tokenizer::IdToToken(int32_t id) const {
  const std::string* text = TokenString(id);
  if (text == nullptr) return std::nullopt;
  return *text;
}

absl::StatusOr<std::vector<int32_t>> Tokenizer::Encode(std::string_view text,
                                                       bool add_special_tokens) const {
  if (const size_t bad = FindInvalidUtf8(text); bad != std::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        "text is not valid UTF-8: bad byte 0x",
        absl::Hex(static_cast<uint8_t>(text[bad]), absl::kZeroPad2), " at byte offset ", bad));
  }
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  std::vector<PreToken> words;
  for (TextPiece& piece : added_->Split(text, normalizer_.get())) {
    if (piece.token_id >= 0) {
      ids.push_back(piece.token_id);
      continue;
    }
    words.clear();
    words.push_back({std::move(piece.text), piece.at_text_start});
    if (pre_tokenizer_ != nullptr) pre_tokenizer_->PreTokenize(words);
    for (const PreToken& word : words) LOOM_RETURN_IF_ERROR(model_->Tokenize(word.text, ids));
  }
  if (add_special_tokens && post_processor_ != nullptr) post_processor_->AddSpecialTokens(ids);
  return ids;
}

absl::StatusOr<std::string> Tokenizer::Decode(std::span<const int32_t> ids,
                                              bool skip_special_tokens) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (const int32_t id : ids) {
    const std::string* text = TokenString(id);
    if (text == nullptr) return absl::NotFoundError(absl::StrCat("unknown token id ", id));
    if (skip_special_tokens && is_special_[id]) continue;
    tokens.push_back(*text);
  }
  std::string out;
  if (decoder_ == nullptr) {
    // HF joins undecoded tokens with spaces.
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (i > 0) out.push_back(' ');
      out.append(tokens[i]);
    }
    return out;
  }
  decoder_->DecodeChain(tokens);
  for (const std::string& token : tokens) out.append(token);
  return out;
}

}  // namespace loom::tokenizer
