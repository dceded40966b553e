// Typed, non-throwing reads of one field of a JSON object, for every JSON document Loom reads
// (a checkpoint's config.json, the engine config, tokenizer.json). Each reader returns the value,
// the caller's fallback when the field is absent, or an InvalidArgument error that names the
// field where it sits ("load_config.dummy_seed: expected an unsigned integer, got number -1";
// "models/x/config.json: field \"hidden_size\": expected an integer, got string \"64\"").
//
// Reading from a value that is not an object finds nothing (the fallback): callers that care
// check the object's type themselves, with their own message.
#ifndef LOOM_COMMON_JSON_FIELDS_H_
#define LOOM_COMMON_JSON_FIELDS_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace loom {

// Where an object sits, as errors name its fields, and how lenient its document's format is.
struct JsonPlace {
  // The file the object came from. When set, fields are named `FILE: field "PATH.KEY"`;
  // otherwise `PATH.KEY` (the caller adds the file, if any, around the whole message).
  std::string file;
  // The object's path inside its document: "" (the root), "load_config",
  // "pre_tokenizer.pretokenizers[1]".
  std::string path;
  // HF-written files (config.json, tokenizer.json) write null for "unset": a null field reads as
  // absent. Where null means nothing, it is a type error like any other.
  bool null_is_absent = true;
  // Hand-written HF configs hold integers as 1024.0: integral floats read as integers.
  bool integral_floats = false;

  // How errors name `key` of this object.
  std::string FieldName(const std::string& key) const;
  // The place of the object at `key` of this one.
  JsonPlace Child(const std::string& key) const;
};

absl::StatusOr<int64_t> JsonInt(const nlohmann::json& object, const std::string& key,
                                const JsonPlace& place, int64_t fallback);
// As JsonInt, but an absent field is an error ("...: required but missing").
absl::StatusOr<int64_t> JsonRequiredInt(const nlohmann::json& object, const std::string& key,
                                        const JsonPlace& place);
// A non-negative integer (seeds and other full-range unsigned values).
absl::StatusOr<uint64_t> JsonUint(const nlohmann::json& object, const std::string& key,
                                  const JsonPlace& place, uint64_t fallback);
// Any JSON number, integers included.
absl::StatusOr<double> JsonNumber(const nlohmann::json& object, const std::string& key,
                                  const JsonPlace& place, double fallback);
absl::StatusOr<bool> JsonBool(const nlohmann::json& object, const std::string& key,
                              const JsonPlace& place, bool fallback);
absl::StatusOr<std::string> JsonString(const nlohmann::json& object, const std::string& key,
                                       const JsonPlace& place, const std::string& fallback);

// The error the readers give for a field that holds the wrong thing, for a caller's own
// readers of richer types: "NAME: expected EXPECTED, got TYPE [VALUE]", or "..., found none"
// when `value` is null (the field is absent).
absl::Status JsonTypeError(const JsonPlace& place, const std::string& key,
                           const std::string& expected, const nlohmann::json* value);

}  // namespace loom

#endif  // LOOM_COMMON_JSON_FIELDS_H_
