// Python's json.dumps, as transformers' `tojson` filter calls it:
// json.dumps(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False).
#ifndef LOOM_CONTROLLER_CHAT_TEMPLATE_JSON_DUMP_H_
#define LOOM_CONTROLLER_CHAT_TEMPLATE_JSON_DUMP_H_

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "controller/chat_template/value.h"

namespace loom::chat_template {

struct JsonDumpOptions {
  bool ensure_ascii = false;
  std::optional<std::string> indent;  // None: one line; else the per-level indent string
  std::optional<std::string> item_separator;  // default ", " (or "," with an indent)
  std::optional<std::string> key_separator;   // default ": "
  bool sort_keys = false;
};

// Errors (InvalidArgument) for values JSON cannot hold: undefined, namespaces, callables.
absl::StatusOr<std::string> PyJsonDumps(const Value& v, const JsonDumpOptions& options);

}  // namespace loom::chat_template

#endif  // LOOM_CONTROLLER_CHAT_TEMPLATE_JSON_DUMP_H_
