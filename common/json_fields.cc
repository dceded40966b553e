#include "common/json_fields.h"

#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"

namespace loom {
namespace {

using nlohmann::json;

// The field, or null when it is absent (or null, where null means absent).
const json* Find(const json& object, const std::string& key, const JsonPlace& place) {
  if (!object.is_object()) return nullptr;
  auto it = object.find(key);
  if (it == object.end() || (place.null_is_absent && it->is_null())) return nullptr;
  return &*it;
}

absl::Status OutOfRange(const JsonPlace& place, const std::string& key) {
  return absl::InvalidArgumentError(absl::StrCat(place.FieldName(key), ": out of range"));
}

// A present field as an integer, for JsonInt and JsonRequiredInt.
absl::StatusOr<int64_t> ReadInt(const json& value, const std::string& key, const JsonPlace& place) {
  if (value.is_number_unsigned()) {
    if (value.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return OutOfRange(place, key);
    }
    return static_cast<int64_t>(value.get<uint64_t>());
  }
  if (value.is_number_integer()) return value.get<int64_t>();
  if (place.integral_floats && value.is_number_float()) {
    const double d = value.get<double>();
    if (std::isfinite(d) && d == std::floor(d)) {
      if (std::fabs(d) >= 9e18) return OutOfRange(place, key);
      return static_cast<int64_t>(d);
    }
  }
  return JsonTypeError(place, key, "an integer", &value);
}

}  // namespace

std::string JsonPlace::FieldName(const std::string& key) const {
  const std::string full = path.empty() ? key : absl::StrCat(path, ".", key);
  return file.empty() ? full : absl::StrCat(file, ": field \"", full, "\"");
}

JsonPlace JsonPlace::Child(const std::string& key) const {
  JsonPlace child = *this;
  child.path = path.empty() ? key : absl::StrCat(path, ".", key);
  return child;
}

absl::Status JsonTypeError(const JsonPlace& place, const std::string& key,
                           const std::string& expected, const json* value) {
  std::string got = "found none";
  if (value != nullptr) {
    got = absl::StrCat("got ", value->type_name());
    // Scalars are short and say what is wrong; a whole object or array would drown the message.
    if (value->is_primitive() && !value->is_null()) absl::StrAppend(&got, " ", value->dump());
  }
  return absl::InvalidArgumentError(
      absl::StrCat(place.FieldName(key), ": expected ", expected, ", ", got));
}

absl::StatusOr<int64_t> JsonInt(const json& object, const std::string& key, const JsonPlace& place,
                                int64_t fallback) {
  const json* value = Find(object, key, place);
  if (value == nullptr) return fallback;
  return ReadInt(*value, key, place);
}

absl::StatusOr<int64_t> JsonRequiredInt(const json& object, const std::string& key,
                                        const JsonPlace& place) {
  const json* value = Find(object, key, place);
  if (value == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(place.FieldName(key), ": required but missing"));
  }
  return ReadInt(*value, key, place);
}

absl::StatusOr<uint64_t> JsonUint(const json& object, const std::string& key,
                                  const JsonPlace& place, uint64_t fallback) {
  const json* value = Find(object, key, place);
  if (value == nullptr) return fallback;
  if (value->is_number_unsigned()) return value->get<uint64_t>();
  if (place.integral_floats && value->is_number_float()) {
    const double d = value->get<double>();
    if (std::isfinite(d) && d == std::floor(d) && d >= 0) {
      if (d >= 1.8e19) return OutOfRange(place, key);
      return static_cast<uint64_t>(d);
    }
  }
  return JsonTypeError(place, key, "an unsigned integer", value);
}

absl::StatusOr<double> JsonNumber(const json& object, const std::string& key,
                                  const JsonPlace& place, double fallback) {
  const json* value = Find(object, key, place);
  if (value == nullptr) return fallback;
  if (!value->is_number()) return JsonTypeError(place, key, "a number", value);
  return value->get<double>();
}

absl::StatusOr<bool> JsonBool(const json& object, const std::string& key, const JsonPlace& place,
                              bool fallback) {
  const json* value = Find(object, key, place);
  if (value == nullptr) return fallback;
  if (!value->is_boolean()) return JsonTypeError(place, key, "true or false", value);
  return value->get<bool>();
}

absl::StatusOr<std::string> JsonString(const json& object, const std::string& key,
                                       const JsonPlace& place, const std::string& fallback) {
  const json* value = Find(object, key, place);
  if (value == nullptr) return fallback;
  if (!value->is_string()) return JsonTypeError(place, key, "a string", value);
  return value->get<std::string>();
}

}  // namespace loom
