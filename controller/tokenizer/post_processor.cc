#include "controller/tokenizer/post_processor.h"

#include <utility>

#include "common/status.h"

namespace loom::tokenizer {
namespace {

// A fixed list of ids before and after the sequence.
class WrapProcessor : public PostProcessor {
 public:
  WrapProcessor(std::vector<int32_t> before, std::vector<int32_t> after)
      : before_(std::move(before)), after_(std::move(after)) {}
  void AddSpecialTokens(std::vector<int32_t>& ids) const override {
    ids.insert(ids.begin(), before_.begin(), before_.end());
    ids.insert(ids.end(), after_.begin(), after_.end());
  }
  std::vector<int32_t> PrefixIds() const override { return before_; }

 private:
  std::vector<int32_t> before_, after_;
};

class SequenceProcessor : public PostProcessor {
 public:
  explicit SequenceProcessor(std::vector<std::unique_ptr<PostProcessor>> steps)
      : steps_(std::move(steps)) {}
  void AddSpecialTokens(std::vector<int32_t>& ids) const override {
    for (const auto& step : steps_) step->AddSpecialTokens(ids);
  }
  std::vector<int32_t> PrefixIds() const override {
    std::vector<int32_t> prefix;
    // Each step wraps the previous result, so the last step's prefix comes first.
    for (const auto& processor : steps_) {
      std::vector<int32_t> step = processor->PrefixIds();
      prefix.insert(prefix.begin(), step.begin(), step.end());
    }
    return prefix;
  }

 private:
  std::vector<std::unique_ptr<PostProcessor>> steps_;
};

absl::StatusOr<int32_t> ParseIdField(const Json& json, const char* key, const std::string& where) {
  // Bert/Roberta store [token, id].
  auto it = json.find(key);
  if (it == json.end() || !it->is_array() || it->size() != 2 || !(*it)[1].is_number_integer()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ".", key, " must be [token, id]"));
  }
  const int64_t id = (*it)[1].get<int64_t>();
  if (id < 0 || id > INT32_MAX) {
    return absl::InvalidArgumentError(absl::StrCat(where, ".", key, " has a bad id"));
  }
  return static_cast<int32_t>(id);
}

// TemplateProcessing's "single": [{"SpecialToken": {"id": name}} | {"Sequence": {"id": "A"}}].
absl::StatusOr<std::unique_ptr<PostProcessor>> ParseTemplate(const Json& json,
                                                             const std::string& where) {
  LOOM_ASSIGN_OR_RETURN(const Json* single, ArrayField(json, "single", where));
  auto specials = json.find("special_tokens");
  if (specials == json.end() || !specials->is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ".special_tokens must be an object"));
  }
  std::vector<int32_t> before, after;
  bool seen_sequence = false;
  for (size_t i = 0; i < single->size(); ++i) {
    const Json& piece = (*single)[i];
    const std::string piece_where = absl::StrCat(where, ".single[", i, "]");
    if (!piece.is_object() || piece.size() != 1) {
      return absl::InvalidArgumentError(absl::StrCat(piece_where, " must be a one-key object"));
    }
    if (piece.contains("Sequence")) {
      if (seen_sequence) {
        return absl::InvalidArgumentError(absl::StrCat(piece_where, ": a second sequence"));
      }
      seen_sequence = true;
      continue;
    }
    auto special = piece.find("SpecialToken");
    if (special == piece.end() || !special->is_object()) {
      return absl::InvalidArgumentError(
          absl::StrCat(piece_where, " must be a SpecialToken or a Sequence"));
    }
    LOOM_ASSIGN_OR_RETURN(std::string name,
                          JsonString(*special, "id", TokenizerPlace(piece_where), ""));
    auto entry = specials->find(name);
    if (entry == specials->end() || !entry->is_object()) {
      return absl::InvalidArgumentError(absl::StrCat(piece_where, ": special token \"", name,
                                                     "\" is missing from special_tokens"));
    }
    LOOM_ASSIGN_OR_RETURN(const Json* ids,
                          ArrayField(*entry, "ids", absl::StrCat(where, ".special_tokens.", name)));
    for (const Json& id : *ids) {
      if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > INT32_MAX) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ".special_tokens.", name, ".ids must be non-negative ids"));
      }
      (seen_sequence ? after : before).push_back(static_cast<int32_t>(id.get<int64_t>()));
    }
  }
  if (!seen_sequence) {
    return absl::InvalidArgumentError(absl::StrCat(where, ".single has no Sequence"));
  }
  return std::make_unique<WrapProcessor>(std::move(before), std::move(after));
}

}  // namespace

absl::StatusOr<std::unique_ptr<PostProcessor>> ParsePostProcessor(const Json& json,
                                                                  const std::string& where) {
  LOOM_ASSIGN_OR_RETURN(const std::string type, ComponentType(json, where));
  if (type == "TemplateProcessing") return ParseTemplate(json, where);
  if (type == "ByteLevel") {
    return std::make_unique<WrapProcessor>(std::vector<int32_t>(), std::vector<int32_t>());
  }
  if (type == "BertProcessing" || type == "RobertaProcessing") {
    LOOM_ASSIGN_OR_RETURN(int32_t cls, ParseIdField(json, "cls", where));
    LOOM_ASSIGN_OR_RETURN(int32_t sep, ParseIdField(json, "sep", where));
    return std::make_unique<WrapProcessor>(std::vector<int32_t>{cls}, std::vector<int32_t>{sep});
  }
  if (type == "Sequence") {
    LOOM_ASSIGN_OR_RETURN(const Json* items, ArrayField(json, "processors", where));
    std::vector<std::unique_ptr<PostProcessor>> steps;
    for (size_t i = 0; i < items->size(); ++i) {
      LOOM_ASSIGN_OR_RETURN(
          auto step, ParsePostProcessor((*items)[i], absl::StrCat(where, ".processors[", i, "]")));
      steps.push_back(std::move(step));
    }
    return std::make_unique<SequenceProcessor>(std::move(steps));
  }
  return absl::UnimplementedError(
      absl::StrCat("unsupported post_processor type \"", type, "\" at ", where));
}

}  // namespace loom::tokenizer
