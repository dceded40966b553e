// Python methods of str and dict that templates call (`s.strip()`, `d.items()`), declared in
// builtins.h.
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "controller/chat_template/builtins.h"
#include "controller/chat_template/str_util.h"

namespace loom::chat_template {
namespace {

const absl::flat_hash_set<std::string>& StrMethods() {
  static const auto* s = new absl::flat_hash_set<std::string>{
      "startswith", "endswith", "strip", "lstrip", "rstrip", "split", "rsplit", "replace", "upper",
      "lower", "title", "capitalize", "find", "count", "join", "splitlines", "format"};
  return *s;
}
const absl::flat_hash_set<std::string>& DictMethods() {
  static const auto* s = new absl::flat_hash_set<std::string>{"items", "keys", "values", "get"};
  return *s;
}

std::optional<std::string> OptArg(const CallArgs& a, size_t i) {
  if (i >= a.positional.size() || a.positional[i].IsNone()) return std::nullopt;
  return a.positional[i].Str();
}

absl::StatusOr<Value> CallStr(const std::string& s, const std::string& m, const CallArgs& a) {
  auto list_of = [](const std::vector<std::string>& parts) {
    List out;
    for (const auto& p : parts) out.push_back(Value(p));
    return Value(std::move(out));
  };
  if (m == "startswith" || m == "endswith") {
    if (a.positional.empty()) return absl::InvalidArgumentError(m + "() takes at least 1 argument");
    List cands = a.positional[0].IsList() ? a.positional[0].AsList() : List{a.positional[0]};
    for (const Value& c : cands) {
      if (m == "startswith" ? absl::StartsWith(s, c.Str()) : absl::EndsWith(s, c.Str())) return Value(true);
    }
    return Value(false);
  }
  if (m == "strip") return Value(PyStrip(s, OptArg(a, 0), StripSide::kBoth));
  if (m == "lstrip") return Value(PyStrip(s, OptArg(a, 0), StripSide::kLeft));
  if (m == "rstrip") return Value(PyStrip(s, OptArg(a, 0), StripSide::kRight));
  if (m == "split" || m == "rsplit") {
    const Value* sep = a.Get(0, "sep");
    const Value* maxsplit = a.Get(1, "maxsplit");
    std::optional<std::string> sp;
    if (sep && !sep->IsNone()) sp = sep->Str();
    if (sp && sp->empty()) return absl::InvalidArgumentError("empty separator");
    return list_of(PySplit(s, sp, maxsplit ? maxsplit->AsInt() : -1, m == "rsplit"));
  }
  if (m == "splitlines") {
    std::vector<std::string> parts = PySplit(s, "\n", -1, false);
    if (!parts.empty() && parts.back().empty()) parts.pop_back();
    return list_of(parts);
  }
  if (m == "replace") {
    if (a.positional.size() < 2) return absl::InvalidArgumentError("replace() takes at least 2 arguments");
    int64_t count = a.positional.size() > 2 ? a.positional[2].AsInt() : -1;
    return Value(PyReplace(s, a.positional[0].Str(), a.positional[1].Str(), count));
  }
  if (m == "upper") return Value(PyUpper(s));
  if (m == "lower") return Value(PyLower(s));
  if (m == "title") return Value(PyTitle(s));
  if (m == "capitalize") return Value(PyCapitalize(s));
  if (m == "find" || m == "count") {
    if (a.positional.empty()) return absl::InvalidArgumentError(m + "() takes at least 1 argument");
    std::string sub = a.positional[0].Str();
    if (m == "find") {
      size_t f = s.find(sub);
      if (f == std::string::npos) return Value(-1);
      std::string prefix = s.substr(0, f);
      return Value(static_cast<int64_t>(Length(Value(prefix)).value_or(0)));
    }
    if (sub.empty()) return Value(Length(Value(s)).value_or(0) + 1);
    int64_t n = 0;
    for (size_t p = s.find(sub); p != std::string::npos; p = s.find(sub, p + sub.size())) ++n;
    return Value(n);
  }
  if (m == "join") {
    if (a.positional.empty()) return absl::InvalidArgumentError("join() takes 1 argument");
    auto items = Iterate(a.positional[0]);
    if (!items.ok()) return items.status();
    std::string out;
    for (size_t i = 0; i < items->size(); ++i) {
      if (!(*items)[i].IsString()) return absl::InvalidArgumentError("sequence item: expected str instance");
      if (i) out += s;
      out += (*items)[i].AsString();
    }
    return Value(std::move(out));
  }
  if (m == "format") {
    // `{}`, `{0}` and `{name}` fields; no format specs.
    std::string out;
    size_t auto_index = 0;
    for (size_t i = 0; i < s.size(); ++i) {
      if (s[i] == '{' && i + 1 < s.size() && s[i + 1] == '{') {
        out += '{';
        ++i;
      } else if (s[i] == '}' && i + 1 < s.size() && s[i + 1] == '}') {
        out += '}';
        ++i;
      } else if (s[i] == '{') {
        size_t e = s.find('}', i);
        if (e == std::string::npos) return absl::InvalidArgumentError("Single '{' encountered in format string");
        std::string field = s.substr(i + 1, e - i - 1);
        const Value* v = nullptr;
        if (field.empty()) {
          v = auto_index < a.positional.size() ? &a.positional[auto_index++] : nullptr;
        } else if (std::isdigit(static_cast<unsigned char>(field[0]))) {
          size_t k = std::stoul(field);
          v = k < a.positional.size() ? &a.positional[k] : nullptr;
        } else {
          for (const auto& [k, x] : a.keyword)
            if (k == field) v = &x;
        }
        if (v == nullptr) return absl::InvalidArgumentError("format: missing argument '" + field + "'");
        out += v->Str();
        i = e;
      } else {
        out += s[i];
      }
    }
    return Value(std::move(out));
  }
  return absl::InvalidArgumentError("'str' object has no attribute '" + m + "'");
}

absl::StatusOr<Value> CallDict(const Dict& d, const std::string& m, const CallArgs& a) {
  List out;
  if (m == "items") {
    for (const auto& [k, v] : d.items) out.push_back(Value(List{Value(k), v}));
  } else if (m == "keys") {
    for (const auto& [k, v] : d.items) out.push_back(Value(k));
  } else if (m == "values") {
    for (const auto& [k, v] : d.items) out.push_back(v);
  } else if (m == "get") {
    if (a.positional.empty()) return absl::InvalidArgumentError("get expected at least 1 argument");
    const Value* v = a.positional[0].IsString() ? d.Find(a.positional[0].AsString()) : nullptr;
    if (v) return *v;
    return a.positional.size() > 1 ? a.positional[1] : Value::None();
  }
  return Value(std::move(out));
}

}  // namespace

bool IsKnownMethod(std::string_view name) {
  std::string n(name);
  return StrMethods().contains(n) || DictMethods().contains(n) || n == "cycle";
}

Value BindMethod(const Value& receiver, const std::string& name) {
  if (receiver.IsString() && StrMethods().contains(name)) {
    std::string s = receiver.AsString();
    return MakeCallable(name, [s, name](const CallArgs& a) { return CallStr(s, name, a); });
  }
  if (receiver.IsDict() && DictMethods().contains(name)) {
    Value r = receiver;
    return MakeCallable(name, [r, name](const CallArgs& a) { return CallDict(r.AsDict(), name, a); });
  }
  return Value::MakeUndefined(name);
}

}  // namespace loom::chat_template
