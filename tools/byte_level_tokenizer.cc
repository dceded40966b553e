#include "tools/byte_level_tokenizer.h"

#include <algorithm>
#include <array>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace loom {
namespace {

using OrderedJson = nlohmann::ordered_json;

constexpr std::array<const char*, 3> kSpecialTokens = {"<|bos|>", "<|eos|>", "<|pad|>"};

// Merges over GPT-2 spellings ("Ġ" is the space byte); each part is a byte or an earlier merge.
constexpr std::array<std::pair<const char*, const char*>, 24> kMerges = {{
    {"Ġ", "t"}, {"h", "e"}, {"Ġ", "a"}, {"i", "n"}, {"Ġt", "he"}, {"e", "r"},
    {"o", "n"}, {"Ġ", "s"}, {"r", "e"}, {"a", "t"}, {"e", "n"},   {"o", "r"},
    {"Ġ", "w"}, {"Ġ", "o"}, {"n", "d"}, {"i", "s"}, {"Ġ", "b"},   {"i", "t"},
    {"Ġ", "c"}, {"e", "s"}, {"Ġ", "f"}, {"a", "n"}, {"o", "u"},   {"l", "l"},
}};

std::string Utf8(uint32_t code_point) {
  std::string out;
  if (code_point < 0x80) {
    out += static_cast<char>(code_point);
  } else if (code_point < 0x800) {
    out += static_cast<char>(0xC0 | (code_point >> 6));
    out += static_cast<char>(0x80 | (code_point & 0x3F));
  } else {
    out += static_cast<char>(0xE0 | (code_point >> 12));
    out += static_cast<char>(0x80 | ((code_point >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (code_point & 0x3F));
  }
  return out;
}

// GPT-2's bytes_to_unicode: printable bytes map to themselves, the rest to 256, 257, ...
std::array<std::string, 256> ByteToUnicode() {
  std::array<std::string, 256> table;
  uint32_t next = 256;
  for (uint32_t b = 0; b < 256; ++b) {
    bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
    table[b] = Utf8(printable ? b : next++);
  }
  return table;
}

}  // namespace

int64_t MinByteLevelVocab() { return 256 + static_cast<int64_t>(kSpecialTokens.size()); }

absl::StatusOr<ByteLevelTokenizer> MakeByteLevelTokenizer(int64_t vocab_size,
                                                          int64_t model_max_length) {
  if (vocab_size < MinByteLevelVocab()) {
    return absl::InvalidArgumentError(absl::StrCat("vocab size ", vocab_size,
                                                   " is too small for the byte-level tokenizer (",
                                                   "needs at least ", MinByteLevelVocab(), ")"));
  }
  const int64_t num_merges =
      std::min<int64_t>(static_cast<int64_t>(kMerges.size()), vocab_size - MinByteLevelVocab());

  OrderedJson vocab = OrderedJson::object();
  std::array<std::string, 256> bytes = ByteToUnicode();
  for (int b = 0; b < 256; ++b) vocab[bytes[b]] = b;
  OrderedJson merges = OrderedJson::array();
  int64_t next_id = 256;
  for (int64_t i = 0; i < num_merges; ++i) {
    std::string merged = std::string(kMerges[i].first) + kMerges[i].second;
    vocab[merged] = next_id++;
    merges.push_back(std::string(kMerges[i].first) + " " + kMerges[i].second);
  }

  ByteLevelTokenizer out;
  OrderedJson added = OrderedJson::array();
  for (const char* token : kSpecialTokens) {
    added.push_back({{"id", next_id},
                     {"content", token},
                     {"single_word", false},
                     {"lstrip", false},
                     {"rstrip", false},
                     {"normalized", false},
                     {"special", true}});
    ++next_id;
  }
  out.bos_id = 256 + num_merges;
  out.eos_id = out.bos_id + 1;
  out.pad_id = out.bos_id + 2;
  out.num_tokens = next_id;

  OrderedJson byte_level = {{"type", "ByteLevel"},
                            {"add_prefix_space", false},
                            {"trim_offsets", true},
                            {"use_regex", true}};
  OrderedJson tokenizer = {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", added},
      {"normalizer", nullptr},
      {"pre_tokenizer", byte_level},
      {"post_processor", byte_level},
      {"decoder", byte_level},
      {"model",
       {{"type", "BPE"},
        {"dropout", nullptr},
        {"unk_token", nullptr},
        {"continuing_subword_prefix", nullptr},
        {"end_of_word_suffix", nullptr},
        {"fuse_unk", false},
        {"byte_fallback", false},
        {"ignore_merges", false},
        {"vocab", vocab},
        {"merges", merges}}},
  };
  out.tokenizer_json = tokenizer.dump(2) + "\n";

  OrderedJson config = {
      {"tokenizer_class", "PreTrainedTokenizerFast"},
      {"bos_token", kSpecialTokens[0]},
      {"eos_token", kSpecialTokens[1]},
      {"pad_token", kSpecialTokens[2]},
      {"add_bos_token", false},
      {"clean_up_tokenization_spaces", false},
      {"model_max_length", model_max_length},
  };
  out.tokenizer_config_json = config.dump(2) + "\n";
  return out;
}

}  // namespace loom
