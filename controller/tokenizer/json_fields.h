// Typed, non-throwing reads of tokenizer.json fields: the places of the file's objects for
// common/json_fields.h's scalar readers, and the tokenizer's own richer fields (component types,
// arrays, patterns, single characters). Every error names the field's path so a bad file can be
// fixed without a debugger.
#ifndef LOOM_CONTROLLER_TOKENIZER_JSON_FIELDS_H_
#define LOOM_CONTROLLER_TOKENIZER_JSON_FIELDS_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "common/json_fields.h"
#include "nlohmann/json.hpp"

namespace loom::tokenizer {

using Json = nlohmann::json;

// `where` is the path of an object in the file (e.g. "pre_tokenizer.pretokenizers[1]"): the place
// JsonString, JsonBool and JsonInt name its fields by. A missing or null field gives the
// fallback; a field of another type is an error; integers must be JSON integers.
inline JsonPlace TokenizerPlace(const std::string& where) {
  return JsonPlace{.path = where, .null_is_absent = true, .integral_floats = false};
}

// The "type" of a component object; an error if `object` is not an object or has no type.
absl::StatusOr<std::string> ComponentType(const Json& object, const std::string& where);

// The array at `object[key]`; an error if missing or not an array.
absl::StatusOr<const Json*> ArrayField(const Json& object, const char* key,
                                       const std::string& where);

// An {"String": s} or {"Regex": r} pattern; `is_regex` tells which.
struct PatternSpec {
  std::string text;
  bool is_regex = false;
};
absl::StatusOr<PatternSpec> PatternField(const Json& object, const char* key,
                                         const std::string& where);

// A one-character string field (Metaspace replacement, Strip content).
absl::StatusOr<char32_t> CharField(const Json& object, const char* key, const std::string& where,
                                   char32_t fallback);

}  // namespace loom::tokenizer

#endif  // LOOM_CONTROLLER_TOKENIZER_JSON_FIELDS_H_
