#include "controller/tokenizer/json_fields.h"

#include "common/status.h"
#include "controller/tokenizer/utf8.h"

namespace loom::tokenizer {
namespace {

const Json* Find(const Json& object, const char* key) {
  if (!object.is_object()) return nullptr;
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return nullptr;
  return &*it;
}

absl::Status WrongType(const std::string& where, const char* key, const char* expected,
                       const Json* value) {
  return JsonTypeError(TokenizerPlace(where), key, expected, value);
}

}  // namespace

absl::StatusOr<std::string> ComponentType(const Json& object, const std::string& where) {
  if (!object.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(where, " must be an object"));
  }
  const Json* type = Find(object, "type");
  if (type == nullptr || !type->is_string()) {
    return absl::InvalidArgumentError(absl::StrCat(where, " has no string \"type\""));
  }
  return type->get<std::string>();
}

absl::StatusOr<const Json*> ArrayField(const Json& object, const char* key,
                                       const std::string& where) {
  const Json* value = Find(object, key);
  if (value == nullptr || !value->is_array()) return WrongType(where, key, "an array", value);
  return value;
}

absl::StatusOr<PatternSpec> PatternField(const Json& object, const char* key,
                                         const std::string& where) {
  const Json* value = Find(object, key);
  if (value == nullptr || !value->is_object() || value->size() != 1) {
    return WrongType(where, key, "{\"String\": ...} or {\"Regex\": ...}", value);
  }
  PatternSpec spec;
  if (auto it = value->find("String"); it != value->end() && it->is_string()) {
    spec.text = it->get<std::string>();
  } else if (auto it = value->find("Regex"); it != value->end() && it->is_string()) {
    spec.text = it->get<std::string>();
    spec.is_regex = true;
  } else {
    return WrongType(where, key, "{\"String\": ...} or {\"Regex\": ...}", value);
  }
  return spec;
}

absl::StatusOr<char32_t> CharField(const Json& object, const char* key, const std::string& where,
                                   char32_t fallback) {
  const Json* value = Find(object, key);
  if (value == nullptr) return fallback;
  if (!value->is_string()) return WrongType(where, key, "a one-character string", value);
  const std::string text = value->get<std::string>();
  if (text.empty() || FindInvalidUtf8(text) != std::string::npos) {
    return WrongType(where, key, "a one-character string", value);
  }
  size_t pos = 0;
  const char32_t c = NextCodePoint(text, pos);
  if (pos != text.size()) return WrongType(where, key, "a one-character string", value);
  return c;
}

}  // namespace loom::tokenizer
