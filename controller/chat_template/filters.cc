// Jinja2's filters (with transformers' `tojson`), declared in builtins.h.
#include <algorithm>
#include <cmath>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "controller/chat_template/json_dump.h"
#include "common/status.h"
#include "controller/chat_template/builtins.h"
#include "controller/chat_template/str_util.h"

namespace loom::chat_template {
namespace {

absl::Status TypeError(const std::string& filter, const Value& v) {
  return absl::InvalidArgumentError(absl::StrCat("filter '", filter, "' got a value of type ", v.TypeName()));
}

// `a.b.c` on dicts (and integer indexes on lists), as Jinja's make_attrgetter.
Value GetAttrPath(const Value& v, const std::string& path) {
  Value cur = v;
  for (absl::string_view part_view : absl::StrSplit(path, '.')) {
    std::string part(part_view);
    if (cur.IsDict()) {
      const Value* f = cur.AsDict().Find(part);
      cur = f ? *f : Value::MakeUndefined(part);
    } else if (cur.IsNamespace()) {
      const Value* f = cur.AsNamespace().attrs.Find(part);
      cur = f ? *f : Value::MakeUndefined(part);
    } else if (cur.IsList() && !part.empty() && std::all_of(part.begin(), part.end(), ::isdigit)) {
      size_t i = std::stoul(part);
      cur = i < cur.AsList().size() ? cur.AsList()[i] : Value::MakeUndefined(part);
    } else {
      cur = Value::MakeUndefined(part);
    }
  }
  return cur;
}

std::optional<std::string> OptString(const Value* v) {
  if (v == nullptr || v->IsNone() || v->IsUndefined()) return std::nullopt;
  return v->Str();
}

absl::StatusOr<Value> ToJson(const Value& v, const CallArgs& a) {
  JsonDumpOptions o;
  if (const Value* x = a.Get(0, "ensure_ascii")) o.ensure_ascii = x->Truthy();
  if (const Value* x = a.Get(1, "indent"); x && !x->IsNone()) {
    o.indent = x->IsString() ? x->AsString() : std::string(std::max<int64_t>(0, x->AsInt()), ' ');
  }
  if (const Value* x = a.Get(2, "separators"); x && x->IsList() && x->AsList().size() == 2) {
    o.item_separator = x->AsList()[0].Str();
    o.key_separator = x->AsList()[1].Str();
  }
  if (const Value* x = a.Get(3, "sort_keys")) o.sort_keys = x->Truthy();
  LOOM_ASSIGN_OR_RETURN(std::string s, PyJsonDumps(v, o));
  return Value(std::move(s));
}

absl::StatusOr<Value> Indent(const Value& v, const CallArgs& a) {
  std::string ind = "    ";
  if (const Value* w = a.Get(0, "width")) ind = w->IsString() ? w->AsString() : std::string(w->AsInt(), ' ');
  bool first = a.Get(1, "first") && a.Get(1, "first")->Truthy();
  bool blank = a.Get(2, "blank") && a.Get(2, "blank")->Truthy();
  std::string s = v.Str() + "\n";
  std::vector<std::string> lines = absl::StrSplit(s, '\n');
  lines.pop_back();  // splitlines() drops the piece after the final newline
  std::string rv;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (i) rv += "\n" + ((blank || !lines[i].empty()) ? ind : "");
    rv += lines[i];
  }
  return Value(first ? ind + rv : rv);
}

// select / reject / selectattr / rejectattr.
absl::StatusOr<Value> Select(const Value& v, const CallArgs& a, bool attr, bool keep) {
  LOOM_ASSIGN_OR_RETURN(List items, Iterate(v));
  size_t at = 0;
  std::string attribute;
  if (attr) {
    if (a.positional.empty()) return absl::InvalidArgumentError("selectattr needs an attribute");
    attribute = a.positional[0].Str();
    at = 1;
  }
  const TestFn* test = nullptr;
  CallArgs targs;
  if (a.positional.size() > at) {
    auto it = Tests().find(a.positional[at].Str());
    if (it == Tests().end()) return absl::InvalidArgumentError("unknown test '" + a.positional[at].Str() + "'");
    test = &it->second;
    targs.positional.assign(a.positional.begin() + at + 1, a.positional.end());
  }
  List out;
  for (const Value& item : items) {
    Value x = attr ? GetAttrPath(item, attribute) : item;
    bool pass = x.Truthy();
    if (test) {
      LOOM_ASSIGN_OR_RETURN(pass, (*test)(x, targs));
    }
    if (pass == keep) out.push_back(item);
  }
  return Value(std::move(out));
}

// The key a sort/unique compares: the attribute, lowercased unless case_sensitive.
Value SortKey(const Value& item, const CallArgs& a, size_t case_index) {
  Value k = item;
  if (const Value* at = a.Get(99, "attribute"); at && !at->IsNone()) k = GetAttrPath(item, at->Str());
  const Value* cs = a.Get(case_index, "case_sensitive");
  if (k.IsString() && !(cs && cs->Truthy())) k = Value(PyLower(k.AsString()));
  return k;
}

absl::StatusOr<Value> ToInt(const Value& v, const CallArgs& a) {
  Value dflt = a.Get(0, "default") ? *a.Get(0, "default") : Value(0);
  if (v.IsBool() || v.IsInt()) return Value(v.AsInt());
  if (v.IsFloat()) return Value(static_cast<int64_t>(v.AsDouble()));
  if (v.IsString()) {
    std::string s = PyStrip(v.AsString(), std::nullopt, StripSide::kBoth);
    try {
      size_t n = 0;
      int64_t i = std::stoll(s, &n, 10);
      if (n == s.size()) return Value(i);
      double d = std::stod(s, &n);
      if (n == s.size()) return Value(static_cast<int64_t>(d));
    } catch (...) {
    }
  }
  return dflt;
}

absl::StatusOr<Value> ToFloat(const Value& v, const CallArgs& a) {
  Value dflt = a.Get(0, "default") ? *a.Get(0, "default") : Value(0.0);
  if (v.IsNumber()) return Value(v.AsDouble());
  if (v.IsString()) {
    std::string s = PyStrip(v.AsString(), std::nullopt, StripSide::kBoth);
    try {
      size_t n = 0;
      double d = std::stod(s, &n);
      if (n == s.size()) return Value(d);
    } catch (...) {
    }
  }
  return dflt;
}

std::string HtmlEscape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out.push_back(c);
    }
  }
  return out;
}

}  // namespace

const absl::flat_hash_map<std::string, FilterFn>& Filters() {
  static const auto* filters = [] {
    auto* f = new absl::flat_hash_map<std::string, FilterFn>();
    auto& F = *f;
    F["length"] = [](const Value& v, const CallArgs&) -> absl::StatusOr<Value> {
      LOOM_ASSIGN_OR_RETURN(int64_t n, Length(v));
      return Value(n);
    };
    F["count"] = F["length"];
    F["tojson"] = ToJson;
    F["string"] = [](const Value& v, const CallArgs&) -> absl::StatusOr<Value> { return Value(v.Str()); };
    F["safe"] = [](const Value& v, const CallArgs&) -> absl::StatusOr<Value> { return v; };
    F["e"] = [](const Value& v, const CallArgs&) -> absl::StatusOr<Value> { return Value(HtmlEscape(v.Str())); };
    F["escape"] = F["e"];
    F["trim"] = [](const Value& v, const CallArgs& a) -> absl::StatusOr<Value> {
      return Value(PyStrip(v.Str(), OptString(a.Get(0, "chars")), StripSide::kBoth));
    };
    F["upper"] = [](const Value& v, const CallArgs&) -> absl::StatusOr<Value> { return Value(PyUpper(v.Str())); };
    F["lower"] = [](const Value& v, const CallArgs&) -> absl::StatusOr<Value> { return Value(PyLower(v.Str())); };
    F["title"] = [](const Value& v, const CallArgs&) -> absl::StatusOr<Value> { return Value(PyTitle(v.Str())); };
    F["capitalize"] = [](const Value& v, const CallArgs&) -> absl::StatusOr<Value> {
      return Value(PyCapitalize(v.Str()));
    };
    F["replace"] = [](const Value& v, const CallArgs& a) -> absl::StatusOr<Value> {
      const Value* old = a.Get(0, "old");
      const Value* repl = a.Get(1, "new");
      if (!old || !repl) return absl::InvalidArgumentError("replace needs old and new");
      const Value* count = a.Get(2, "count");
      return Value(PyReplace(v.Str(), old->Str(), repl->Str(), count && count->IsInt() ? count->AsInt() : -1));
    };
    F["default"] = [](const Value& v, const CallArgs& a) -> absl::StatusOr<Value> {
      const Value* d = a.Get(0, "default_value");
      const Value* boolean = a.Get(1, "boolean");
      bool use = v.IsUndefined() || (boolean && boolean->Truthy() && !v.Truthy());
      return use ? (d ? *d : Value(std::string())) : v;
    };
    F["d"] = F["default"];
    F["first"] = [](const Value& v, const CallArgs&) -> absl::StatusOr<Value> {
      LOOM_ASSIGN_OR_RETURN(List l, Iterate(v));
      return l.empty() ? Value::MakeUndefined("first") : l.front();
    };
    F["last"] = [](const Value& v, const CallArgs&) -> absl::StatusOr<Value> {
      LOOM_ASSIGN_OR_RETURN(List l, Iterate(v));
      return l.empty() ? Value::MakeUndefined("last") : l.back();
    };
    F["list"] = [](const Value& v, const CallArgs&) -> absl::StatusOr<Value> {
      LOOM_ASSIGN_OR_RETURN(List l, Iterate(v));
      return Value(std::move(l));
    };
    F["reverse"] = [](const Value& v, const CallArgs&) -> absl::StatusOr<Value> {
      if (v.IsString()) return SliceValue(v, Value(), Value(), Value(-1));
      LOOM_ASSIGN_OR_RETURN(List l, Iterate(v));
      std::reverse(l.begin(), l.end());
      return Value(std::move(l));
    };
    F["items"] = [](const Value& v, const CallArgs&) -> absl::StatusOr<Value> {
      if (v.IsUndefined()) return Value(List{});
      if (!v.IsDict()) return TypeError("items", v);
      List out;
      for (const auto& [k, x] : v.AsDict().items) out.push_back(Value(List{Value(k), x}));
      return Value(std::move(out));
    };
    F["join"] = [](const Value& v, const CallArgs& a) -> absl::StatusOr<Value> {
      LOOM_ASSIGN_OR_RETURN(List l, Iterate(v));
      std::string sep = a.Get(0, "d") ? a.Get(0, "d")->Str() : "";
      const Value* attr = a.Get(1, "attribute");
      std::string out;
      for (size_t i = 0; i < l.size(); ++i) {
        if (i) out += sep;
        out += (attr && !attr->IsNone() ? GetAttrPath(l[i], attr->Str()) : l[i]).Str();
      }
      return Value(std::move(out));
    };
    F["int"] = ToInt;
    F["float"] = ToFloat;
    F["abs"] = [](const Value& v, const CallArgs&) -> absl::StatusOr<Value> {
      if (v.IsFloat()) return Value(std::fabs(v.AsDouble()));
      if (v.IsInt() || v.IsBool()) return Value(std::abs(v.AsInt()));
      return TypeError("abs", v);
    };
    F["indent"] = Indent;
    F["select"] = [](const Value& v, const CallArgs& a) { return Select(v, a, false, true); };
    F["reject"] = [](const Value& v, const CallArgs& a) { return Select(v, a, false, false); };
    F["selectattr"] = [](const Value& v, const CallArgs& a) { return Select(v, a, true, true); };
    F["rejectattr"] = [](const Value& v, const CallArgs& a) { return Select(v, a, true, false); };
    F["map"] = [](const Value& v, const CallArgs& a) -> absl::StatusOr<Value> {
      LOOM_ASSIGN_OR_RETURN(List l, Iterate(v));
      List out;
      if (const Value* attr = a.Get(99, "attribute")) {
        const Value* dflt = a.Get(99, "default");
        for (const Value& x : l) {
          Value r = GetAttrPath(x, attr->Str());
          out.push_back(r.IsUndefined() && dflt ? *dflt : r);
        }
        return Value(std::move(out));
      }
      if (a.positional.empty()) return absl::InvalidArgumentError("map needs a filter name or attribute=");
      auto it = Filters().find(a.positional[0].Str());
      if (it == Filters().end()) return absl::InvalidArgumentError("unknown filter '" + a.positional[0].Str() + "'");
      CallArgs fargs;
      fargs.positional.assign(a.positional.begin() + 1, a.positional.end());
      fargs.keyword = a.keyword;
      for (const Value& x : l) {
        LOOM_ASSIGN_OR_RETURN(Value r, it->second(x, fargs));
        out.push_back(std::move(r));
      }
      return Value(std::move(out));
    };
    F["unique"] = [](const Value& v, const CallArgs& a) -> absl::StatusOr<Value> {
      LOOM_ASSIGN_OR_RETURN(List l, Iterate(v));
      List out, keys;
      for (const Value& x : l) {
        Value k = SortKey(x, a, 0);
        if (std::none_of(keys.begin(), keys.end(), [&](const Value& o) { return Equal(o, k); })) {
          keys.push_back(k);
          out.push_back(x);
        }
      }
      return Value(std::move(out));
    };
    F["sort"] = [](const Value& v, const CallArgs& a) -> absl::StatusOr<Value> {
      LOOM_ASSIGN_OR_RETURN(List l, Iterate(v));
      bool reverse = a.Get(0, "reverse") && a.Get(0, "reverse")->Truthy();
      absl::Status err;
      std::stable_sort(l.begin(), l.end(), [&](const Value& x, const Value& y) {
        auto lt = reverse ? Less(SortKey(y, a, 1), SortKey(x, a, 1)) : Less(SortKey(x, a, 1), SortKey(y, a, 1));
        if (!lt.ok()) {
          err = lt.status();
          return false;
        }
        return *lt;
      });
      LOOM_RETURN_IF_ERROR(err);
      return Value(std::move(l));
    };
    F["sum"] = [](const Value& v, const CallArgs& a) -> absl::StatusOr<Value> {
      LOOM_ASSIGN_OR_RETURN(List l, Iterate(v));
      const Value* attr = a.Get(0, "attribute");
      Value total = a.Get(1, "start") ? *a.Get(1, "start") : Value(0);
      for (const Value& x0 : l) {
        Value x = attr && !attr->IsNone() ? GetAttrPath(x0, attr->Str()) : x0;
        if (!x.IsNumber() || !total.IsNumber()) return TypeError("sum", x);
        total = (x.IsFloat() || total.IsFloat()) ? Value(total.AsDouble() + x.AsDouble())
                                                 : Value(total.AsInt() + x.AsInt());
      }
      return total;
    };
    return f;
  }();
  return *filters;
}

}  // namespace loom::chat_template
