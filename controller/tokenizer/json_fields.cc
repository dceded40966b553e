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

absl::Status WrongType(const std::string& where, const char* key, const char* expected) {
  return absl::InvalidArgumentError(absl::StrCat(where, ".", key, " must be ", expected));
}

}  // namespace

absl::StatusOr<std::string> StringField(const Json& object, const char* key,
                                        const std::string& where, const std::string& fallback) {
  const Json* value = Find(object, key);
  if (value == nullptr) return fallback;
  if (!value->is_string()) return WrongType(where, key, "a string");
  return value->get<std::string>();
}

absl::StatusOr<bool> BoolField(const Json& object, const char* key, const std::string& where,
                               bool fallback) {
  const Json* value = Find(object, key);
  if (value == nullptr) return fallback;
  if (!value->is_boolean()) return WrongType(where, key, "a boolean");
  return value->get<bool>();
}

absl::StatusOr<int64_t> IntField(const Json& object, const char* key, const std::string& where,
                                 int64_t fallback) {
  const Json* value = Find(object, key);
  if (value == nullptr) return fallback;
  if (!value->is_number_integer()) return WrongType(where, key, "an integer");
  return value->get<int64_t>();
}

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
  if (value == nullptr || !value->is_array()) return WrongType(where, key, "an array");
  return value;
}

absl::StatusOr<PatternSpec> PatternField(const Json& object, const char* key,
                                         const std::string& where) {
  const Json* value = Find(object, key);
  if (value == nullptr || !value->is_object() || value->size() != 1) {
    return WrongType(where, key, "{\"String\": ...} or {\"Regex\": ...}");
  }
  PatternSpec spec;
  if (auto it = value->find("String"); it != value->end() && it->is_string()) {
    spec.text = it->get<std::string>();
  } else if (auto it = value->find("Regex"); it != value->end() && it->is_string()) {
    spec.text = it->get<std::string>();
    spec.is_regex = true;
  } else {
    return WrongType(where, key, "{\"String\": ...} or {\"Regex\": ...}");
  }
  return spec;
}

absl::StatusOr<char32_t> CharField(const Json& object, const char* key, const std::string& where,
                                   char32_t fallback) {
  const Json* value = Find(object, key);
  if (value == nullptr) return fallback;
  if (!value->is_string()) return WrongType(where, key, "a one-character string");
  const std::string text = value->get<std::string>();
  if (text.empty() || FindInvalidUtf8(text) != std::string::npos) {
    return WrongType(where, key, "a one-character string");
  }
  size_t pos = 0;
  const char32_t c = NextCodePoint(text, pos);
  if (pos != text.size()) return WrongType(where, key, "a one-character string");
  return c;
}

}  // namespace loom::tokenizer
