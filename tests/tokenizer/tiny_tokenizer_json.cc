#include "tests/tokenizer/tiny_tokenizer_json.h"

#include <string>
#include <utility>
#include <vector>

#include "controller/tokenizer/byte_level_alphabet.h"

namespace loom::testing {

nlohmann::json TinyTokenizerJson() {
  using nlohmann::json;
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) {
    vocab[std::string(tokenizer::ByteToChars(static_cast<uint8_t>(b)))] = b;
  }
  const std::vector<std::pair<std::string, std::string>> merges = {
      {"t", "h"}, {"h", "e"}, {"th", "e"}, {"Ġ", "t"}, {"Ġt", "he"}, {"Ġ", "the"}, {"e", "r"}};
  json merge_list = json::array();
  int next_id = 256;
  for (const auto& [a, b] : merges) {
    if (!vocab.contains(a + b)) vocab[a + b] = next_id++;
    merge_list.push_back(a + " " + b);
  }
  const int bos = next_id++, eos = next_id++;
  return json{
      {"version", "1.0"},
      {"added_tokens", json::array({json{{"id", bos},
                                         {"content", "<|bos|>"},
                                         {"single_word", false},
                                         {"lstrip", false},
                                         {"rstrip", false},
                                         {"normalized", false},
                                         {"special", true}},
                                    json{{"id", eos},
                                         {"content", "<|eos|>"},
                                         {"single_word", false},
                                         {"lstrip", false},
                                         {"rstrip", false},
                                         {"normalized", false},
                                         {"special", true}}})},
      {"normalizer", json{{"type", "NFC"}}},
      {"pre_tokenizer", json{{"type", "ByteLevel"},
                             {"add_prefix_space", false},
                             {"trim_offsets", true},
                             {"use_regex", true}}},
      {"post_processor",
       json{{"type", "TemplateProcessing"},
            {"single", json::array({json{{"SpecialToken", {{"id", "<|bos|>"}, {"type_id", 0}}}},
                                    json{{"Sequence", {{"id", "A"}, {"type_id", 0}}}}})},
            {"pair", json::array()},
            {"special_tokens",
             json{{"<|bos|>", {{"id", "<|bos|>"}, {"ids", {bos}}, {"tokens", {"<|bos|>"}}}}}}}},
      {"decoder", json{{"type", "ByteLevel"}}},
      {"model", json{{"type", "BPE"},
                     {"dropout", nullptr},
                     {"unk_token", nullptr},
                     {"fuse_unk", false},
                     {"byte_fallback", false},
                     {"vocab", vocab},
                     {"merges", merge_list}}}};
}

}  // namespace loom::testing
