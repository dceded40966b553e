#include "controller/chat_template/evaluator.h"

#include <cmath>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "controller/chat_template/builtins.h"
#include "common/status.h"

namespace loom::chat_template {
namespace {

enum class Flow { kNormal, kBreak, kContinue };

absl::Status TypeErr(std::string_view msg) { return absl::InvalidArgumentError(std::string(msg)); }

absl::Status UndefinedErr(const Value& v) {
  return absl::InvalidArgumentError(absl::StrCat("'", v.UndefinedHint(), "' is undefined"));
}

absl::StatusOr<Value> Arith(const std::string& op, const Value& a, const Value& b) {
  if (a.IsUndefined()) return UndefinedErr(a);
  if (b.IsUndefined()) return UndefinedErr(b);
  auto unsupported = [&] {
    return TypeErr(absl::StrCat("unsupported operand type(s) for ", op, ": '", a.TypeName(), "' and '",
                                b.TypeName(), "'"));
  };
  if (op == "+") {
    if (a.IsString() && b.IsString()) return Value(a.AsString() + b.AsString());
    if (a.IsList() && b.IsList()) {
      List l = a.AsList();
      l.insert(l.end(), b.AsList().begin(), b.AsList().end());
      return Value(std::move(l));
    }
    if (a.IsString() || b.IsString())
      return TypeErr(absl::StrCat("can only concatenate str (not \"", (a.IsString() ? b : a).TypeName(), "\") to str"));
  }
  if (op == "*") {
    const Value* seq = a.IsString() || a.IsList() ? &a : b.IsString() || b.IsList() ? &b : nullptr;
    const Value* n = seq == &a ? &b : &a;
    if (seq && (n->IsInt() || n->IsBool())) {
      int64_t k = std::max<int64_t>(0, n->AsInt());
      if (seq->IsString()) {
        std::string out;
        for (int64_t i = 0; i < k; ++i) out += seq->AsString();
        return Value(std::move(out));
      }
      List out;
      for (int64_t i = 0; i < k; ++i) out.insert(out.end(), seq->AsList().begin(), seq->AsList().end());
      return Value(std::move(out));
    }
  }
  if (!a.IsNumber() || !b.IsNumber()) return unsupported();
  bool fl = a.IsFloat() || b.IsFloat();
  if (op == "+") return fl ? Value(a.AsDouble() + b.AsDouble()) : Value(a.AsInt() + b.AsInt());
  if (op == "-") return fl ? Value(a.AsDouble() - b.AsDouble()) : Value(a.AsInt() - b.AsInt());
  if (op == "*") return fl ? Value(a.AsDouble() * b.AsDouble()) : Value(a.AsInt() * b.AsInt());
  if (op == "**") {
    if (!fl && b.AsInt() >= 0) {
      int64_t r = 1;
      for (int64_t i = 0; i < b.AsInt(); ++i) r *= a.AsInt();
      return Value(r);
    }
    return Value(std::pow(a.AsDouble(), b.AsDouble()));
  }
  if (b.AsDouble() == 0) return TypeErr(op == "/" ? "division by zero" : "integer division or modulo by zero");
  if (op == "/") return Value(a.AsDouble() / b.AsDouble());
  if (op == "//") {
    if (fl) return Value(std::floor(a.AsDouble() / b.AsDouble()));
    int64_t q = a.AsInt() / b.AsInt();
    if ((a.AsInt() % b.AsInt() != 0) && ((a.AsInt() < 0) != (b.AsInt() < 0))) --q;
    return Value(q);
  }
  if (op == "%") {
    if (fl) {
      double r = std::fmod(a.AsDouble(), b.AsDouble());
      if (r != 0 && ((r < 0) != (b.AsDouble() < 0))) r += b.AsDouble();
      return Value(r);
    }
    int64_t r = a.AsInt() % b.AsInt();
    if (r != 0 && ((r < 0) != (b.AsInt() < 0))) r += b.AsInt();
    return Value(r);
  }
  return unsupported();
}

absl::StatusOr<bool> Contains(const Value& container, const Value& item) {
  if (container.IsString()) {
    if (!item.IsString()) return TypeErr("'in <string>' requires string as left operand");
    return container.AsString().find(item.AsString()) != std::string::npos;
  }
  if (container.IsDict()) return item.IsString() && container.AsDict().Find(item.AsString()) != nullptr;
  LOOM_ASSIGN_OR_RETURN(List items, Iterate(container));
  for (const Value& x : items)
    if (Equal(x, item)) return true;
  return false;
}

class Renderer {
 public:
  Renderer(const Value& variables, const RenderOptions& options) : options_(options) {
    auto root = std::make_shared<Dict>();
    if (variables.IsDict()) *root = variables.AsDict();
    frames_.push_back(root);
    InstallGlobals();
  }

  absl::Status Exec(const Body& body, std::string& out, Flow& flow) {
    for (const NodePtr& n : body) {
      line_ = n->line;
      LOOM_RETURN_IF_ERROR(ExecNode(*n, out, flow));
      if (flow != Flow::kNormal) return absl::OkStatus();
    }
    return absl::OkStatus();
  }

  bool raised() const { return raised_; }
  int line() const { return line_; }

 private:
  void InstallGlobals() {
    auto def = [this](const std::string& name, std::function<absl::StatusOr<Value>(const CallArgs&)> fn) {
      globals_.Set(name, MakeCallable(name, std::move(fn)));
    };
    def("raise_exception", [this](const CallArgs& a) -> absl::StatusOr<Value> {
      raised_ = true;
      return absl::InvalidArgumentError(a.positional.empty() ? "" : a.positional[0].Str());
    });
    def("strftime_now", [this](const CallArgs& a) -> absl::StatusOr<Value> {
      std::tm tm{};
      if (options_.now) {
        tm = options_.now();
      } else {
        std::time_t t = std::time(nullptr);
        localtime_r(&t, &tm);
      }
      std::string fmt = a.positional.empty() ? "" : a.positional[0].Str();
      char buf[512];
      size_t n = std::strftime(buf, sizeof(buf), fmt.c_str(), &tm);
      return Value(std::string(buf, n));
    });
    def("range", [](const CallArgs& a) -> absl::StatusOr<Value> {
      int64_t start = 0, stop = 0, step = 1;
      for (const Value& v : a.positional)
        if (!v.IsInt() && !v.IsBool()) return TypeErr("range() arguments must be integers");
      if (a.positional.size() == 1) {
        stop = a.positional[0].AsInt();
      } else if (a.positional.size() >= 2) {
        start = a.positional[0].AsInt();
        stop = a.positional[1].AsInt();
        if (a.positional.size() > 2) step = a.positional[2].AsInt();
      }
      if (step == 0) return TypeErr("range() arg 3 must not be zero");
      List out;
      for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
        out.push_back(Value(i));
        if (out.size() > 100000) return TypeErr("range too big");
      }
      return Value(std::move(out));
    });
    auto make_dict = [](const CallArgs& a, Dict& d) -> absl::Status {
      for (const Value& p : a.positional) {
        if (!p.IsDict()) return TypeErr("expected a dict argument");
        for (const auto& [k, v] : p.AsDict().items) d.Set(k, v);
      }
      for (const auto& [k, v] : a.keyword) d.Set(k, v);
      return absl::OkStatus();
    };
    def("namespace", [make_dict](const CallArgs& a) -> absl::StatusOr<Value> {
      auto ns = std::make_shared<Namespace>();
      LOOM_RETURN_IF_ERROR(make_dict(a, ns->attrs));
      return Value(ns);
    });
    def("dict", [make_dict](const CallArgs& a) -> absl::StatusOr<Value> {
      Dict d;
      LOOM_RETURN_IF_ERROR(make_dict(a, d));
      return MakeDict(std::move(d));
    });
  }

  Value Lookup(const std::string& name) const {
    for (auto it = frames_.rbegin(); it != frames_.rend(); ++it)
      if (const Value* v = (*it)->Find(name)) return *v;
    if (const Value* v = globals_.Find(name)) return *v;
    return Value::MakeUndefined(name);
  }

  absl::Status Assign(const std::vector<std::string>& targets, const Value& v, Dict& frame) {
    if (targets.size() == 1) {
      frame.Set(targets[0], v);
      return absl::OkStatus();
    }
    LOOM_ASSIGN_OR_RETURN(List items, Iterate(v));
    if (items.size() != targets.size())
      return TypeErr(absl::StrCat("cannot unpack ", items.size(), " values into ", targets.size(), " names"));
    for (size_t i = 0; i < targets.size(); ++i) frame.Set(targets[i], items[i]);
    return absl::OkStatus();
  }

  absl::Status ExecNode(const Node& n, std::string& out, Flow& flow) {
    switch (n.kind) {
      case Node::Kind::kText: out += n.text; return absl::OkStatus();
      case Node::Kind::kOutput: {
        LOOM_ASSIGN_OR_RETURN(Value v, Eval(*n.expr));
        out += v.Str();
        return absl::OkStatus();
      }
      case Node::Kind::kIf:
        for (const auto& [cond, body] : n.branches) {
          bool take = true;
          if (cond) {
            LOOM_ASSIGN_OR_RETURN(Value c, Eval(*cond));
            take = c.Truthy();
          }
          if (take) return Exec(body, out, flow);
        }
        return absl::OkStatus();
      case Node::Kind::kFor: return ExecFor(n, out, flow);
      case Node::Kind::kSet: {
        LOOM_ASSIGN_OR_RETURN(Value v, Eval(*n.expr));
        if (!n.attr.empty()) {
          Value ns = Lookup(n.targets[0]);
          if (!ns.IsNamespace()) return TypeErr("can only assign attributes on a namespace() object");
          ns.AsNamespace().attrs.Set(n.attr, v);
          return absl::OkStatus();
        }
        return Assign(n.targets, v, *frames_.back());
      }
      case Node::Kind::kSetBlock: {
        std::string captured;
        Flow f = Flow::kNormal;
        LOOM_RETURN_IF_ERROR(Exec(n.body, captured, f));
        frames_.back()->Set(n.targets[0], Value(std::move(captured)));
        return absl::OkStatus();
      }
      case Node::Kind::kMacro: {
        const Node* node = &n;
        frames_.back()->Set(n.text, MakeCallable(n.text, [this, node](const CallArgs& a) {
                              return CallMacro(*node, a);
                            }));
        return absl::OkStatus();
      }
      case Node::Kind::kBreak: flow = Flow::kBreak; return absl::OkStatus();
      case Node::Kind::kContinue: flow = Flow::kContinue; return absl::OkStatus();
      case Node::Kind::kScope: return Exec(n.body, out, flow);
    }
    return absl::OkStatus();
  }

  absl::StatusOr<Value> CallMacro(const Node& n, const CallArgs& a) {
    auto frame = std::make_shared<Dict>();
    if (a.positional.size() > n.params.size())
      return TypeErr(absl::StrCat("macro '", n.text, "' takes at most ", n.params.size(), " arguments"));
    std::vector<std::shared_ptr<Dict>> saved = frames_;
    frames_.resize(1);  // macros see the template's top level, not the caller's locals
    for (size_t i = 0; i < n.params.size(); ++i) {
      if (const Value* v = a.Get(i, n.params[i])) {
        frame->Set(n.params[i], *v);
      } else if (n.defaults[i]) {
        auto d = Eval(*n.defaults[i]);
        if (!d.ok()) {
          frames_ = saved;
          return d.status();
        }
        frame->Set(n.params[i], *d);
      } else {
        frame->Set(n.params[i], Value::MakeUndefined(n.params[i]));
      }
    }
    frames_.push_back(frame);
    std::string out;
    Flow f = Flow::kNormal;
    int line = line_;
    absl::Status st = Exec(n.body, out, f);
    frames_ = saved;
    if (!st.ok()) return st;
    line_ = line;
    return Value(std::move(out));
  }

  absl::Status ExecFor(const Node& n, std::string& out, Flow& outer_flow) {
    LOOM_ASSIGN_OR_RETURN(Value iterable, Eval(*n.expr));
    if (iterable.IsNone()) return TypeErr("'NoneType' object is not iterable");
    LOOM_ASSIGN_OR_RETURN(List items, Iterate(iterable));
    if (n.filter) {
      List kept;
      for (const Value& item : items) {
        frames_.push_back(std::make_shared<Dict>());
        absl::Status st = Assign(n.targets, item, *frames_.back());
        absl::StatusOr<Value> c = st.ok() ? Eval(*n.filter) : absl::StatusOr<Value>(st);
        frames_.pop_back();
        if (!c.ok()) return c.status();
        if (c->Truthy()) kept.push_back(item);
      }
      items = std::move(kept);
    }
    int64_t len = static_cast<int64_t>(items.size());
    for (int64_t i = 0; i < len; ++i) {
      auto frame = std::make_shared<Dict>();
      Dict loop;
      loop.Set("index0", Value(i));
      loop.Set("index", Value(i + 1));
      loop.Set("revindex0", Value(len - i - 1));
      loop.Set("revindex", Value(len - i));
      loop.Set("first", Value(i == 0));
      loop.Set("last", Value(i == len - 1));
      loop.Set("length", Value(len));
      loop.Set("depth", Value(1));
      loop.Set("depth0", Value(0));
      loop.Set("previtem", i > 0 ? items[i - 1] : Value::MakeUndefined("previtem"));
      loop.Set("nextitem", i + 1 < len ? items[i + 1] : Value::MakeUndefined("nextitem"));
      loop.Set("cycle", MakeCallable("cycle", [i](const CallArgs& a) -> absl::StatusOr<Value> {
                 if (a.positional.empty()) return TypeErr("no items for cycling given");
                 return a.positional[i % a.positional.size()];
               }));
      frame->Set("loop", MakeDict(std::move(loop)));
      LOOM_RETURN_IF_ERROR(Assign(n.targets, items[i], *frame));
      frames_.push_back(frame);
      Flow flow = Flow::kNormal;
      absl::Status st = Exec(n.body, out, flow);
      frames_.pop_back();
      LOOM_RETURN_IF_ERROR(st);
      if (flow == Flow::kBreak) break;
    }
    (void)outer_flow;
    if (len == 0 && !n.else_body.empty()) return Exec(n.else_body, out, outer_flow);
    return absl::OkStatus();
  }

  absl::StatusOr<CallArgs> EvalArgs(const Expr& e) {
    CallArgs a;
    for (size_t i = 1; i < e.args.size(); ++i) {
      LOOM_ASSIGN_OR_RETURN(Value v, Eval(*e.args[i]));
      a.positional.push_back(std::move(v));
    }
    for (const auto& [k, x] : e.kwargs) {
      LOOM_ASSIGN_OR_RETURN(Value v, Eval(*x));
      a.keyword.emplace_back(k, std::move(v));
    }
    return a;
  }

  absl::StatusOr<Value> GetAttr(const Value& obj, const std::string& name) {
    if (obj.IsUndefined()) return UndefinedErr(obj);
    Value m = BindMethod(obj, name);
    if (!m.IsUndefined()) return m;
    if (obj.IsDict()) {
      const Value* v = obj.AsDict().Find(name);
      return v ? *v : Value::MakeUndefined(name);
    }
    if (obj.IsNamespace()) {
      const Value* v = obj.AsNamespace().attrs.Find(name);
      return v ? *v : Value::MakeUndefined(name);
    }
    return Value::MakeUndefined(name);
  }

  absl::StatusOr<Value> GetItem(const Value& obj, const Value& key) {
    if (obj.IsUndefined()) return UndefinedErr(obj);
    if (obj.IsDict()) {
      if (!key.IsString()) return Value::MakeUndefined(key.Str());
      const Value* v = obj.AsDict().Find(key.AsString());
      if (v) return *v;
      return GetAttr(obj, key.AsString());
    }
    if ((obj.IsList() || obj.IsString()) && (key.IsInt() || key.IsBool())) {
      LOOM_ASSIGN_OR_RETURN(int64_t len, Length(obj));
      int64_t i = key.AsInt() < 0 ? key.AsInt() + len : key.AsInt();
      if (i < 0 || i >= len) return Value::MakeUndefined(absl::StrCat(obj.TypeName(), " index ", key.AsInt()));
      if (obj.IsList()) return obj.AsList()[i];
      return SliceValue(obj, Value(i), Value(i + 1), Value(1));
    }
    if (key.IsString()) return GetAttr(obj, key.AsString());
    return Value::MakeUndefined(key.Str());
  }

  absl::StatusOr<Value> Eval(const Expr& e) {
    switch (e.kind) {
      case Expr::Kind::kLiteral: return e.literal;
      case Expr::Kind::kName: return Lookup(e.name);
      case Expr::Kind::kList: {
        List l;
        for (const ExprPtr& x : e.args) {
          LOOM_ASSIGN_OR_RETURN(Value v, Eval(*x));
          l.push_back(std::move(v));
        }
        return Value(std::move(l));
      }
      case Expr::Kind::kDict: {
        Dict d;
        for (size_t i = 0; i + 1 < e.args.size(); i += 2) {
          LOOM_ASSIGN_OR_RETURN(Value k, Eval(*e.args[i]));
          LOOM_ASSIGN_OR_RETURN(Value v, Eval(*e.args[i + 1]));
          if (!k.IsString()) return TypeErr("only string dict keys are supported");
          d.Set(k.AsString(), std::move(v));
        }
        return MakeDict(std::move(d));
      }
      case Expr::Kind::kGetAttr: {
        LOOM_ASSIGN_OR_RETURN(Value obj, Eval(*e.args[0]));
        return GetAttr(obj, e.name);
      }
      case Expr::Kind::kGetItem: {
        LOOM_ASSIGN_OR_RETURN(Value obj, Eval(*e.args[0]));
        LOOM_ASSIGN_OR_RETURN(Value key, Eval(*e.args[1]));
        return GetItem(obj, key);
      }
      case Expr::Kind::kSlice: {
        LOOM_ASSIGN_OR_RETURN(Value obj, Eval(*e.args[0]));
        Value parts[3];
        for (int k = 0; k < 3; ++k) {
          if (e.args[k + 1]) {
            LOOM_ASSIGN_OR_RETURN(parts[k], Eval(*e.args[k + 1]));
          }
        }
        return SliceValue(obj, parts[0], parts[1], parts[2]);
      }
      case Expr::Kind::kCall: {
        LOOM_ASSIGN_OR_RETURN(Value callee, Eval(*e.args[0]));
        LOOM_ASSIGN_OR_RETURN(CallArgs a, EvalArgs(e));
        if (callee.IsUndefined()) return UndefinedErr(callee);
        if (!callee.IsCallable()) return TypeErr(absl::StrCat("'", callee.TypeName(), "' object is not callable"));
        return callee.AsCallable().fn(a);
      }
      case Expr::Kind::kFilter: {
        LOOM_ASSIGN_OR_RETURN(Value operand, Eval(*e.args[0]));
        LOOM_ASSIGN_OR_RETURN(CallArgs a, EvalArgs(e));
        return Filters().at(e.name)(operand, a);
      }
      case Expr::Kind::kTest: {
        LOOM_ASSIGN_OR_RETURN(Value operand, Eval(*e.args[0]));
        LOOM_ASSIGN_OR_RETURN(CallArgs a, EvalArgs(e));
        LOOM_ASSIGN_OR_RETURN(bool r, Tests().at(e.name)(operand, a));
        return Value(r != e.negated);
      }
      case Expr::Kind::kUnary: {
        LOOM_ASSIGN_OR_RETURN(Value v, Eval(*e.args[0]));
        if (e.name == "not") return Value(!v.Truthy());
        if (!v.IsNumber()) return TypeErr(absl::StrCat("bad operand type for unary ", e.name, ": '", v.TypeName(), "'"));
        if (e.name == "+") return v.IsFloat() ? v : Value(v.AsInt());
        return v.IsFloat() ? Value(-v.AsDouble()) : Value(-v.AsInt());
      }
      case Expr::Kind::kAnd: {
        LOOM_ASSIGN_OR_RETURN(Value l, Eval(*e.args[0]));
        if (!l.Truthy()) return l;
        return Eval(*e.args[1]);
      }
      case Expr::Kind::kOr: {
        LOOM_ASSIGN_OR_RETURN(Value l, Eval(*e.args[0]));
        if (l.Truthy()) return l;
        return Eval(*e.args[1]);
      }
      case Expr::Kind::kCondition: {
        LOOM_ASSIGN_OR_RETURN(Value c, Eval(*e.args[0]));
        if (c.Truthy()) return Eval(*e.args[1]);
        if (e.args[2]) return Eval(*e.args[2]);
        return Value::MakeUndefined("conditional expression");
      }
      case Expr::Kind::kBinary: {
        LOOM_ASSIGN_OR_RETURN(Value l, Eval(*e.args[0]));
        LOOM_ASSIGN_OR_RETURN(Value r, Eval(*e.args[1]));
        const std::string& op = e.name;
        if (op == "~") return Value(l.Str() + r.Str());
        if (op == "==") return Value(Equal(l, r));
        if (op == "!=") return Value(!Equal(l, r));
        if (op == "<" || op == ">" || op == "<=" || op == ">=") {
          bool swap = op == ">" || op == "<=";
          LOOM_ASSIGN_OR_RETURN(bool lt, swap ? Less(r, l) : Less(l, r));
          return Value(op.size() == 1 ? lt : !lt);
        }
        if (op == "in" || op == "notin") {
          LOOM_ASSIGN_OR_RETURN(bool in, Contains(r, l));
          return Value(in == (op == "in"));
        }
        return Arith(op, l, r);
      }
    }
    return TypeErr("bad expression");
  }

  const RenderOptions& options_;
  std::vector<std::shared_ptr<Dict>> frames_;
  Dict globals_;
  bool raised_ = false;
  int line_ = 0;
};

}  // namespace

absl::StatusOr<std::string> RenderBody(const Body& body, const Value& variables, const RenderOptions& options,
                                       bool* raised, int* error_line) {
  Renderer r(variables, options);
  std::string out;
  Flow flow = Flow::kNormal;
  absl::Status st = r.Exec(body, out, flow);
  *raised = r.raised();
  *error_line = r.line();
  if (!st.ok()) return st;
  return out;
}

}  // namespace loom::chat_template
