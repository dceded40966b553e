// The values a chat template computes with: JSON-like data (none, bool, int, float, string, list,
// dict) plus Jinja's undefined, namespace() objects and callables (macros, globals, bound methods).
// Lists and dicts are shared and never mutated after construction (the sandbox is immutable);
// a namespace is mutable through `{% set ns.attr = ... %}`. Dicts keep insertion order, as Python's.
#ifndef LOOM_CONTROLLER_CHAT_TEMPLATE_VALUE_H_
#define LOOM_CONTROLLER_CHAT_TEMPLATE_VALUE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace loom::chat_template {

class Value;
struct Dict;
struct Namespace;
struct Callable;
using List = std::vector<Value>;

// Undefined remembers what was looked up, for the error when it is used.
struct Undefined {
  std::string hint;
};

class Value {
 public:
  enum class Kind { kUndefined, kNone, kBool, kInt, kFloat, kString, kList, kDict, kNamespace, kCallable };

  Value() : v_(Undefined{}) {}
  static Value MakeUndefined(std::string hint) { return Value(Undefined{std::move(hint)}); }
  static Value None() { return Value(nullptr); }
  Value(bool b) : v_(b) {}
  Value(int64_t i) : v_(i) {}
  Value(int i) : v_(static_cast<int64_t>(i)) {}
  Value(double d) : v_(d) {}
  Value(std::string s) : v_(std::move(s)) {}
  Value(const char* s) : v_(std::string(s)) {}
  Value(List l) : v_(std::make_shared<const List>(std::move(l))) {}
  Value(std::shared_ptr<const Dict> d) : v_(std::move(d)) {}
  Value(std::shared_ptr<Namespace> n) : v_(std::move(n)) {}
  Value(std::shared_ptr<const Callable> c) : v_(std::move(c)) {}

  Kind kind() const { return static_cast<Kind>(v_.index()); }
  bool IsUndefined() const { return kind() == Kind::kUndefined; }
  bool IsNone() const { return kind() == Kind::kNone; }
  bool IsBool() const { return kind() == Kind::kBool; }
  bool IsInt() const { return kind() == Kind::kInt; }
  bool IsFloat() const { return kind() == Kind::kFloat; }
  // Python's numbers.Number: bool counts.
  bool IsNumber() const { return IsBool() || IsInt() || IsFloat(); }
  bool IsString() const { return kind() == Kind::kString; }
  bool IsList() const { return kind() == Kind::kList; }
  bool IsDict() const { return kind() == Kind::kDict; }
  bool IsNamespace() const { return kind() == Kind::kNamespace; }
  bool IsCallable() const { return kind() == Kind::kCallable; }

  bool AsBool() const { return std::get<bool>(v_); }
  // Int of a bool or int.
  int64_t AsInt() const { return IsBool() ? AsBool() : std::get<int64_t>(v_); }
  // Double of any number.
  double AsDouble() const { return IsFloat() ? std::get<double>(v_) : static_cast<double>(AsInt()); }
  const std::string& AsString() const { return std::get<std::string>(v_); }
  const List& AsList() const { return *std::get<std::shared_ptr<const List>>(v_); }
  const Dict& AsDict() const { return *std::get<std::shared_ptr<const Dict>>(v_); }
  Namespace& AsNamespace() const { return *std::get<std::shared_ptr<Namespace>>(v_); }
  const Callable& AsCallable() const { return *std::get<std::shared_ptr<const Callable>>(v_); }
  const std::string& UndefinedHint() const { return std::get<Undefined>(v_).hint; }

  // Python truthiness; undefined is false.
  bool Truthy() const;
  // Python's str(); undefined renders as "".
  std::string Str() const;
  // Python's repr() (lists and dicts print their items with it).
  std::string Repr() const;
  // The Python type name, for error messages ("str", "int", "NoneType", ...).
  std::string TypeName() const;

  static Value FromJson(const nlohmann::ordered_json& j);
  static Value FromJson(const nlohmann::json& j);

 private:
  Value(Undefined u) : v_(std::move(u)) {}
  Value(std::nullptr_t n) : v_(n) {}

  std::variant<Undefined, std::nullptr_t, bool, int64_t, double, std::string, std::shared_ptr<const List>,
               std::shared_ptr<const Dict>, std::shared_ptr<Namespace>, std::shared_ptr<const Callable>>
      v_;
};

// An insertion-ordered string-keyed map (dicts in templates are small: linear lookup).
struct Dict {
  std::vector<std::pair<std::string, Value>> items;
  const Value* Find(std::string_view key) const;
  void Set(std::string key, Value value);
};

struct Namespace {
  Dict attrs;
};

struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;
  // The keyword `name`, else positional `index`, else nullptr.
  const Value* Get(size_t index, std::string_view name) const;
};

struct Callable {
  std::string name;
  std::function<absl::StatusOr<Value>(const CallArgs&)> fn;
};

Value MakeDict(Dict d);
Value MakeCallable(std::string name, std::function<absl::StatusOr<Value>(const CallArgs&)> fn);

// Python ==: numbers across int/float/bool, deep on lists and dicts; undefined equals undefined.
bool Equal(const Value& a, const Value& b);
// Python <; error for unorderable types.
absl::StatusOr<bool> Less(const Value& a, const Value& b);
// Python's repr() of a float ("1.0", "1e+16", "2.5e-05", "inf", "nan").
std::string PyFloatRepr(double d);

}  // namespace loom::chat_template

#endif  // LOOM_CONTROLLER_CHAT_TEMPLATE_VALUE_H_
