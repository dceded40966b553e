// Jinja2's tests (`x is name`), declared in builtins.h.
#include "absl/status/status.h"
#include "controller/chat_template/builtins.h"

namespace loom::chat_template {
namespace {

absl::StatusOr<bool> CompareTest(const Value& a, const CallArgs& args, const std::string& op) {
  if (args.positional.empty()) return absl::InvalidArgumentError("test '" + op + "' needs an argument");
  const Value& b = args.positional[0];
  if (op == "eq") return Equal(a, b);
  if (op == "ne") return !Equal(a, b);
  if (op == "lt") return Less(a, b);
  if (op == "gt") return Less(b, a);
  auto lt = op == "le" ? Less(b, a) : Less(a, b);
  if (!lt.ok()) return lt.status();
  return !*lt;  // le: !(b < a); ge: !(a < b)
}

}  // namespace

const absl::flat_hash_map<std::string, TestFn>& Tests() {
  static const auto* tests = [] {
    auto* t = new absl::flat_hash_map<std::string, TestFn>();
    auto simple = [t](const std::string& name, std::function<bool(const Value&)> f) {
      (*t)[name] = [f](const Value& v, const CallArgs&) -> absl::StatusOr<bool> { return f(v); };
    };
    simple("defined", [](const Value& v) { return !v.IsUndefined(); });
    simple("undefined", [](const Value& v) { return v.IsUndefined(); });
    simple("none", [](const Value& v) { return v.IsNone(); });
    simple("boolean", [](const Value& v) { return v.IsBool(); });
    simple("true", [](const Value& v) { return v.IsBool() && v.AsBool(); });
    simple("false", [](const Value& v) { return v.IsBool() && !v.AsBool(); });
    simple("integer", [](const Value& v) { return v.IsInt(); });
    simple("float", [](const Value& v) { return v.IsFloat(); });
    simple("number", [](const Value& v) { return v.IsNumber(); });
    simple("string", [](const Value& v) { return v.IsString(); });
    simple("mapping", [](const Value& v) { return v.IsDict(); });
    simple("iterable", [](const Value& v) { return v.IsList() || v.IsDict() || v.IsString() || v.IsUndefined(); });
    simple("sequence", [](const Value& v) { return v.IsList() || v.IsDict() || v.IsString() || v.IsUndefined(); });
    simple("callable", [](const Value& v) { return v.IsCallable(); });
    simple("lower", [](const Value& v) {
      if (!v.IsString()) return false;
      for (char c : v.AsString()) if (c >= 'A' && c <= 'Z') return false;
      return true;
    });
    simple("upper", [](const Value& v) {
      if (!v.IsString()) return false;
      for (char c : v.AsString()) if (c >= 'a' && c <= 'z') return false;
      return true;
    });
    simple("escaped", [](const Value&) { return false; });
    for (const char* name : {"odd", "even"}) {
      bool odd = std::string(name) == "odd";
      (*t)[name] = [odd](const Value& v, const CallArgs&) -> absl::StatusOr<bool> {
        if (!v.IsInt() && !v.IsBool()) return absl::InvalidArgumentError("odd/even test needs an integer");
        return ((v.AsInt() % 2) != 0) == odd;
      };
    }
    (*t)["divisibleby"] = [](const Value& v, const CallArgs& a) -> absl::StatusOr<bool> {
      if (a.positional.empty() || !a.positional[0].IsInt() || !v.IsInt() || a.positional[0].AsInt() == 0)
        return absl::InvalidArgumentError("divisibleby needs non-zero integers");
      return v.AsInt() % a.positional[0].AsInt() == 0;
    };
    const std::pair<const char*, const char*> cmp[] = {
        {"eq", "eq"}, {"equalto", "eq"}, {"==", "eq"}, {"ne", "ne"}, {"!=", "ne"}, {"lt", "lt"}, {"lessthan", "lt"},
        {"<", "lt"},  {"gt", "gt"},      {"greaterthan", "gt"},       {">", "gt"},  {"le", "le"},  {"<=", "le"},
        {"ge", "ge"}, {">=", "ge"}};
    for (const auto& [name, op] : cmp) {
      std::string o = op;
      (*t)[name] = [o](const Value& v, const CallArgs& a) { return CompareTest(v, a, o); };
    }
    (*t)["sameas"] = [](const Value& v, const CallArgs& a) -> absl::StatusOr<bool> {
      if (a.positional.empty()) return absl::InvalidArgumentError("sameas needs an argument");
      const Value& o = a.positional[0];
      if (v.kind() != o.kind()) return false;
      if (v.IsNone() || v.IsUndefined()) return true;
      return Equal(v, o) && !v.IsList() && !v.IsDict();
    };
    (*t)["in"] = [](const Value& v, const CallArgs& a) -> absl::StatusOr<bool> {
      if (a.positional.empty()) return absl::InvalidArgumentError("in needs an argument");
      const Value& c = a.positional[0];
      if (c.IsString() && v.IsString()) return c.AsString().find(v.AsString()) != std::string::npos;
      if (c.IsDict()) return v.IsString() && c.AsDict().Find(v.AsString()) != nullptr;
      auto items = Iterate(c);
      if (!items.ok()) return items.status();
      for (const Value& x : *items)
        if (Equal(x, v)) return true;
      return false;
    };
    return t;
  }();
  return *tests;
}

}  // namespace loom::chat_template
