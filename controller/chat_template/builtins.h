// The filters, tests, methods and globals a chat template can use, by name. The parser checks
// every filter, test and method name against these tables, so a template that names an
// unsupported one fails at Parse, not at Render.
#ifndef LOOM_CONTROLLER_CHAT_TEMPLATE_BUILTINS_H_
#define LOOM_CONTROLLER_CHAT_TEMPLATE_BUILTINS_H_

#include <functional>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "controller/chat_template/value.h"

namespace loom::chat_template {

// `operand | name(args)`.
using FilterFn = std::function<absl::StatusOr<Value>(const Value& operand, const CallArgs& args)>;
// `operand is name(args)`.
using TestFn = std::function<absl::StatusOr<bool>(const Value& operand, const CallArgs& args)>;

const absl::flat_hash_map<std::string, FilterFn>& Filters();
const absl::flat_hash_map<std::string, TestFn>& Tests();

// Whether `name` is a method of some type (str, dict) or of the loop object; checked at parse.
bool IsKnownMethod(std::string_view name);
// `receiver.name` when it is a method of the receiver's type, bound; nullopt-like undefined else.
Value BindMethod(const Value& receiver, const std::string& name);

// Helpers shared by filters and the evaluator.
absl::StatusOr<List> Iterate(const Value& v);  // list items, dict keys, string characters
absl::StatusOr<int64_t> Length(const Value& v);
// Python's a[start:stop:step] on a list or string.
absl::StatusOr<Value> SliceValue(const Value& v, const Value& start, const Value& stop, const Value& step);

}  // namespace loom::chat_template

#endif  // LOOM_CONTROLLER_CHAT_TEMPLATE_BUILTINS_H_
