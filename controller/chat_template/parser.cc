#include "controller/chat_template/parser.h"

#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "controller/chat_template/builtins.h"
#include "common/status.h"

namespace loom::chat_template {
namespace {

class Parser {
 public:
  explicit Parser(const std::vector<Token>& t) : t_(t) {}

  absl::StatusOr<Body> Template() {
    Body body;
    std::string end;
    LOOM_RETURN_IF_ERROR(Statements({}, body, end));
    return body;
  }

 private:
  const Token& Cur() const { return t_[i_]; }
  const Token& Peek(size_t k = 1) const { return t_[std::min(i_ + k, t_.size() - 1)]; }
  bool IsOp(std::string_view op) const { return Cur().type == TokenType::kOp && Cur().value == op; }
  bool IsName(std::string_view n) const { return Cur().type == TokenType::kName && Cur().value == n; }
  absl::Status Err(const std::string& msg) const {
    return absl::InvalidArgumentError(absl::StrCat("line ", Cur().line, ": ", msg));
  }
  std::string Describe() const {
    switch (Cur().type) {
      case TokenType::kEof: return "end of template";
      case TokenType::kBlockEnd: return "'%}'";
      case TokenType::kVarEnd: return "'}}'";
      default: return "'" + Cur().value + "'";
    }
  }
  absl::Status ExpectOp(const std::string& op) {
    if (!IsOp(op)) return Err(absl::StrCat("expected '", op, "', got ", Describe()));
    ++i_;
    return absl::OkStatus();
  }
  absl::Status ExpectName(const std::string& n) {
    if (!IsName(n)) return Err(absl::StrCat("expected '", n, "', got ", Describe()));
    ++i_;
    return absl::OkStatus();
  }
  absl::StatusOr<std::string> Identifier() {
    if (Cur().type != TokenType::kName) return Err(absl::StrCat("expected a name, got ", Describe()));
    return t_[i_++].value;
  }
  absl::Status BlockEnd() {
    if (Cur().type != TokenType::kBlockEnd) return Err(absl::StrCat("expected '%}', got ", Describe()));
    ++i_;
    return absl::OkStatus();
  }

  // Parses until one of `ends` opens a block ({% endfor %} ...), which is left in `end` with the
  // tokens after its name unread. At the top level (`ends` empty) parses to the end.
  absl::Status Statements(const std::vector<std::string>& ends, Body& body, std::string& end) {
    while (true) {
      const Token& tok = Cur();
      if (tok.type == TokenType::kEof) {
        if (ends.empty()) return absl::OkStatus();
        return Err(absl::StrCat("unexpected end of template, expected '", ends[0], "'"));
      }
      if (tok.type == TokenType::kText) {
        auto n = std::make_unique<Node>();
        n->kind = Node::Kind::kText;
        n->line = tok.line;
        n->text = tok.value;
        body.push_back(std::move(n));
        ++i_;
      } else if (tok.type == TokenType::kVarBegin) {
        ++i_;
        auto n = std::make_unique<Node>();
        n->kind = Node::Kind::kOutput;
        n->line = tok.line;
        LOOM_ASSIGN_OR_RETURN(n->expr, Tuple(true));
        if (Cur().type != TokenType::kVarEnd) return Err(absl::StrCat("expected '}}', got ", Describe()));
        ++i_;
        body.push_back(std::move(n));
      } else if (tok.type == TokenType::kBlockBegin) {
        ++i_;
        if (Cur().type != TokenType::kName) return Err("expected a statement name");
        std::string word = Cur().value;
        for (const auto& e : ends) {
          if (word == e) {
            end = word;
            ++i_;
            return absl::OkStatus();
          }
        }
        LOOM_RETURN_IF_ERROR(Statement(body));
      } else {
        return Err(absl::StrCat("unexpected ", Describe()));
      }
    }
  }

  absl::Status Statement(Body& body) {
    auto n = std::make_unique<Node>();
    n->line = Cur().line;
    std::string word = t_[i_++].value;
    std::string end;
    if (word == "if") {
      n->kind = Node::Kind::kIf;
      LOOM_ASSIGN_OR_RETURN(ExprPtr cond, Tuple(true));
      LOOM_RETURN_IF_ERROR(BlockEnd());
      while (true) {
        Body b;
        LOOM_RETURN_IF_ERROR(Statements({"elif", "else", "endif"}, b, end));
        n->branches.emplace_back(std::move(cond), std::move(b));
        if (end == "elif") {
          LOOM_ASSIGN_OR_RETURN(cond, Tuple(true));
          LOOM_RETURN_IF_ERROR(BlockEnd());
        } else if (end == "else") {
          LOOM_RETURN_IF_ERROR(BlockEnd());
          Body eb;
          LOOM_RETURN_IF_ERROR(Statements({"endif"}, eb, end));
          n->branches.emplace_back(nullptr, std::move(eb));
          LOOM_RETURN_IF_ERROR(BlockEnd());
          break;
        } else {
          LOOM_RETURN_IF_ERROR(BlockEnd());
          break;
        }
      }
    } else if (word == "for") {
      n->kind = Node::Kind::kFor;
      LOOM_ASSIGN_OR_RETURN(n->targets, Targets());
      LOOM_RETURN_IF_ERROR(ExpectName("in"));
      LOOM_ASSIGN_OR_RETURN(n->expr, Tuple(false));
      if (IsName("if")) {
        ++i_;
        LOOM_ASSIGN_OR_RETURN(n->filter, Tuple(true));
      }
      if (IsName("recursive")) return Err("recursive loops are not supported");
      LOOM_RETURN_IF_ERROR(BlockEnd());
      ++loop_depth_;
      LOOM_RETURN_IF_ERROR(Statements({"else", "endfor"}, n->body, end));
      --loop_depth_;
      LOOM_RETURN_IF_ERROR(BlockEnd());
      if (end == "else") {
        LOOM_RETURN_IF_ERROR(Statements({"endfor"}, n->else_body, end));
        LOOM_RETURN_IF_ERROR(BlockEnd());
      }
    } else if (word == "set") {
      LOOM_ASSIGN_OR_RETURN(std::string target, Identifier());
      n->targets.push_back(target);
      if (IsOp(".")) {
        ++i_;
        LOOM_ASSIGN_OR_RETURN(n->attr, Identifier());
      } else {
        while (IsOp(",")) {
          ++i_;
          LOOM_ASSIGN_OR_RETURN(std::string more, Identifier());
          n->targets.push_back(more);
        }
      }
      if (IsOp("=")) {
        ++i_;
        n->kind = Node::Kind::kSet;
        LOOM_ASSIGN_OR_RETURN(n->expr, Tuple(true));
        LOOM_RETURN_IF_ERROR(BlockEnd());
      } else {
        if (n->targets.size() != 1 || !n->attr.empty()) return Err("expected '='");
        n->kind = Node::Kind::kSetBlock;
        LOOM_RETURN_IF_ERROR(BlockEnd());
        LOOM_RETURN_IF_ERROR(Statements({"endset"}, n->body, end));
        LOOM_RETURN_IF_ERROR(BlockEnd());
      }
    } else if (word == "macro") {
      n->kind = Node::Kind::kMacro;
      LOOM_ASSIGN_OR_RETURN(n->text, Identifier());
      LOOM_RETURN_IF_ERROR(ExpectOp("("));
      while (!IsOp(")")) {
        LOOM_ASSIGN_OR_RETURN(std::string p, Identifier());
        n->params.push_back(p);
        ExprPtr def;
        if (IsOp("=")) {
          ++i_;
          LOOM_ASSIGN_OR_RETURN(def, Expression(true));
        }
        n->defaults.push_back(std::move(def));
        if (!IsOp(",")) break;
        ++i_;
      }
      LOOM_RETURN_IF_ERROR(ExpectOp(")"));
      LOOM_RETURN_IF_ERROR(BlockEnd());
      int saved = loop_depth_;
      loop_depth_ = 0;
      LOOM_RETURN_IF_ERROR(Statements({"endmacro"}, n->body, end));
      loop_depth_ = saved;
      LOOM_RETURN_IF_ERROR(BlockEnd());
    } else if (word == "break" || word == "continue") {
      if (loop_depth_ == 0) return Err(absl::StrCat("'", word, "' outside a loop"));
      n->kind = word == "break" ? Node::Kind::kBreak : Node::Kind::kContinue;
      LOOM_RETURN_IF_ERROR(BlockEnd());
    } else if (word == "generation") {
      n->kind = Node::Kind::kScope;
      LOOM_RETURN_IF_ERROR(BlockEnd());
      LOOM_RETURN_IF_ERROR(Statements({"endgeneration"}, n->body, end));
      LOOM_RETURN_IF_ERROR(BlockEnd());
    } else {
      --i_;
      return Err(absl::StrCat("unknown or unsupported statement '", word, "'"));
    }
    body.push_back(std::move(n));
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<std::string>> Targets() {
    std::vector<std::string> out;
    bool paren = IsOp("(");
    if (paren) ++i_;
    while (true) {
      LOOM_ASSIGN_OR_RETURN(std::string name, Identifier());
      out.push_back(name);
      if (!IsOp(",")) break;
      ++i_;
    }
    if (paren) LOOM_RETURN_IF_ERROR(ExpectOp(")"));
    return out;
  }

  ExprPtr Make(Expr::Kind k, int line) {
    auto e = std::make_unique<Expr>();
    e->kind = k;
    e->line = line;
    return e;
  }

  // `a, b` without parentheses is a tuple (a list here).
  absl::StatusOr<ExprPtr> Tuple(bool with_condexpr) {
    int line = Cur().line;
    LOOM_ASSIGN_OR_RETURN(ExprPtr first, Expression(with_condexpr));
    if (!IsOp(",")) return first;
    ExprPtr list = Make(Expr::Kind::kList, line);
    list->args.push_back(std::move(first));
    while (IsOp(",")) {
      ++i_;
      if (Cur().type == TokenType::kBlockEnd || Cur().type == TokenType::kVarEnd || IsOp(")")) break;
      LOOM_ASSIGN_OR_RETURN(ExprPtr e, Expression(with_condexpr));
      list->args.push_back(std::move(e));
    }
    return list;
  }

  absl::StatusOr<ExprPtr> Expression(bool with_condexpr) {
    if (!with_condexpr) return Or();
    LOOM_ASSIGN_OR_RETURN(ExprPtr e, Or());
    while (IsName("if")) {
      int line = Cur().line;
      ++i_;
      ExprPtr c = Make(Expr::Kind::kCondition, line);
      LOOM_ASSIGN_OR_RETURN(ExprPtr cond, Or());
      ExprPtr other;
      if (IsName("else")) {
        ++i_;
        LOOM_ASSIGN_OR_RETURN(other, Expression(true));
      }
      c->args.push_back(std::move(cond));
      c->args.push_back(std::move(e));
      c->args.push_back(std::move(other));
      e = std::move(c);
    }
    return e;
  }

  absl::StatusOr<ExprPtr> Or() {
    LOOM_ASSIGN_OR_RETURN(ExprPtr l, And());
    while (IsName("or")) {
      ExprPtr n = Make(Expr::Kind::kOr, Cur().line);
      ++i_;
      LOOM_ASSIGN_OR_RETURN(ExprPtr r, And());
      n->args.push_back(std::move(l));
      n->args.push_back(std::move(r));
      l = std::move(n);
    }
    return l;
  }

  absl::StatusOr<ExprPtr> And() {
    LOOM_ASSIGN_OR_RETURN(ExprPtr l, Not());
    while (IsName("and")) {
      ExprPtr n = Make(Expr::Kind::kAnd, Cur().line);
      ++i_;
      LOOM_ASSIGN_OR_RETURN(ExprPtr r, Not());
      n->args.push_back(std::move(l));
      n->args.push_back(std::move(r));
      l = std::move(n);
    }
    return l;
  }

  absl::StatusOr<ExprPtr> Not() {
    if (IsName("not")) {
      ExprPtr n = Make(Expr::Kind::kUnary, Cur().line);
      n->name = "not";
      ++i_;
      LOOM_ASSIGN_OR_RETURN(ExprPtr a, Not());
      n->args.push_back(std::move(a));
      return n;
    }
    return Compare();
  }

  absl::StatusOr<ExprPtr> Binary(ExprPtr l, std::string op, ExprPtr r, int line) {
    ExprPtr n = Make(Expr::Kind::kBinary, line);
    n->name = std::move(op);
    n->args.push_back(std::move(l));
    n->args.push_back(std::move(r));
    return n;
  }

  absl::StatusOr<ExprPtr> Compare() {
    LOOM_ASSIGN_OR_RETURN(ExprPtr l, Math1());
    while (true) {
      int line = Cur().line;
      std::string op;
      if (Cur().type == TokenType::kOp &&
          (IsOp("==") || IsOp("!=") || IsOp("<") || IsOp(">") || IsOp("<=") || IsOp(">="))) {
        op = Cur().value;
        ++i_;
      } else if (IsName("in")) {
        op = "in";
        ++i_;
      } else if (IsName("not") && Peek().type == TokenType::kName && Peek().value == "in") {
        op = "notin";
        i_ += 2;
      } else {
        return l;
      }
      LOOM_ASSIGN_OR_RETURN(ExprPtr r, Math1());
      LOOM_ASSIGN_OR_RETURN(l, Binary(std::move(l), op, std::move(r), line));
    }
  }

  absl::StatusOr<ExprPtr> Math1() {
    LOOM_ASSIGN_OR_RETURN(ExprPtr l, Concat());
    while (IsOp("+") || IsOp("-")) {
      int line = Cur().line;
      std::string op = t_[i_++].value;
      LOOM_ASSIGN_OR_RETURN(ExprPtr r, Concat());
      LOOM_ASSIGN_OR_RETURN(l, Binary(std::move(l), op, std::move(r), line));
    }
    return l;
  }

  absl::StatusOr<ExprPtr> Concat() {
    LOOM_ASSIGN_OR_RETURN(ExprPtr l, Math2());
    while (IsOp("~")) {
      int line = Cur().line;
      ++i_;
      LOOM_ASSIGN_OR_RETURN(ExprPtr r, Math2());
      LOOM_ASSIGN_OR_RETURN(l, Binary(std::move(l), "~", std::move(r), line));
    }
    return l;
  }

  absl::StatusOr<ExprPtr> Math2() {
    LOOM_ASSIGN_OR_RETURN(ExprPtr l, Pow());
    while (IsOp("*") || IsOp("/") || IsOp("//") || IsOp("%")) {
      int line = Cur().line;
      std::string op = t_[i_++].value;
      LOOM_ASSIGN_OR_RETURN(ExprPtr r, Pow());
      LOOM_ASSIGN_OR_RETURN(l, Binary(std::move(l), op, std::move(r), line));
    }
    return l;
  }

  absl::StatusOr<ExprPtr> Pow() {
    LOOM_ASSIGN_OR_RETURN(ExprPtr l, Unary(true));
    while (IsOp("**")) {
      int line = Cur().line;
      ++i_;
      LOOM_ASSIGN_OR_RETURN(ExprPtr r, Unary(true));
      LOOM_ASSIGN_OR_RETURN(l, Binary(std::move(l), "**", std::move(r), line));
    }
    return l;
  }

  absl::StatusOr<ExprPtr> Unary(bool with_filter) {
    ExprPtr node;
    if (IsOp("-") || IsOp("+")) {
      node = Make(Expr::Kind::kUnary, Cur().line);
      node->name = t_[i_++].value;
      LOOM_ASSIGN_OR_RETURN(ExprPtr a, Unary(false));
      node->args.push_back(std::move(a));
    } else {
      LOOM_ASSIGN_OR_RETURN(node, Primary());
    }
    LOOM_ASSIGN_OR_RETURN(node, Postfix(std::move(node)));
    if (with_filter) {
      LOOM_ASSIGN_OR_RETURN(node, FilterExpr(std::move(node)));
    }
    return node;
  }

  absl::StatusOr<ExprPtr> Primary() {
    const Token& tok = Cur();
    int line = tok.line;
    if (tok.type == TokenType::kName) {
      ++i_;
      const std::string& v = tok.value;
      ExprPtr e = Make(Expr::Kind::kLiteral, line);
      if (v == "true" || v == "True") {
        e->literal = Value(true);
      } else if (v == "false" || v == "False") {
        e->literal = Value(false);
      } else if (v == "none" || v == "None") {
        e->literal = Value::None();
      } else {
        e->kind = Expr::Kind::kName;
        e->name = v;
      }
      return e;
    }
    if (tok.type == TokenType::kString) {
      std::string s;
      while (Cur().type == TokenType::kString) s += t_[i_++].value;
      ExprPtr e = Make(Expr::Kind::kLiteral, line);
      e->literal = Value(std::move(s));
      return e;
    }
    if (tok.type == TokenType::kInt || tok.type == TokenType::kFloat) {
      ++i_;
      ExprPtr e = Make(Expr::Kind::kLiteral, line);
      if (tok.type == TokenType::kInt) {
        e->literal = Value(static_cast<int64_t>(std::stoll(tok.value)));
      } else {
        e->literal = Value(std::stod(tok.value));
      }
      return e;
    }
    if (IsOp("(")) {
      ++i_;
      if (IsOp(")")) {
        ++i_;
        return Make(Expr::Kind::kList, line);
      }
      LOOM_ASSIGN_OR_RETURN(ExprPtr e, Tuple(true));
      LOOM_RETURN_IF_ERROR(ExpectOp(")"));
      return e;
    }
    if (IsOp("[")) {
      ++i_;
      ExprPtr e = Make(Expr::Kind::kList, line);
      while (!IsOp("]")) {
        LOOM_ASSIGN_OR_RETURN(ExprPtr item, Expression(true));
        e->args.push_back(std::move(item));
        if (!IsOp(",")) break;
        ++i_;
      }
      LOOM_RETURN_IF_ERROR(ExpectOp("]"));
      return e;
    }
    if (IsOp("{")) {
      ++i_;
      ExprPtr e = Make(Expr::Kind::kDict, line);
      while (!IsOp("}")) {
        LOOM_ASSIGN_OR_RETURN(ExprPtr k, Expression(true));
        LOOM_RETURN_IF_ERROR(ExpectOp(":"));
        LOOM_ASSIGN_OR_RETURN(ExprPtr v, Expression(true));
        e->args.push_back(std::move(k));
        e->args.push_back(std::move(v));
        if (!IsOp(",")) break;
        ++i_;
      }
      LOOM_RETURN_IF_ERROR(ExpectOp("}"));
      return e;
    }
    return Err(absl::StrCat("unexpected ", Describe()));
  }

  absl::StatusOr<ExprPtr> Postfix(ExprPtr node) {
    while (true) {
      int line = Cur().line;
      if (IsOp(".")) {
        ++i_;
        ExprPtr e = Make(Expr::Kind::kGetAttr, line);
        if (Cur().type == TokenType::kName) {
          e->name = t_[i_++].value;
          if (IsOp("(") && !IsKnownMethod(e->name))
            return Err(absl::StrCat("unknown method '", e->name, "'"));
        } else if (Cur().type == TokenType::kInt) {
          e->kind = Expr::Kind::kGetItem;
          ExprPtr idx = Make(Expr::Kind::kLiteral, line);
          idx->literal = Value(static_cast<int64_t>(std::stoll(t_[i_++].value)));
          e->args.push_back(std::move(node));
          e->args.push_back(std::move(idx));
          node = std::move(e);
          continue;
        } else {
          return Err(absl::StrCat("expected an attribute name, got ", Describe()));
        }
        e->args.push_back(std::move(node));
        node = std::move(e);
      } else if (IsOp("[")) {
        ++i_;
        LOOM_ASSIGN_OR_RETURN(node, Subscript(std::move(node), line));
      } else if (IsOp("(")) {
        LOOM_ASSIGN_OR_RETURN(node, Call(std::move(node), Expr::Kind::kCall, ""));
      } else {
        return node;
      }
    }
  }

  absl::StatusOr<ExprPtr> Subscript(ExprPtr obj, int line) {
    ExprPtr parts[3];
    bool slice = false;
    for (int k = 0; k < 3; ++k) {
      if (!IsOp(":") && !IsOp("]")) {
        LOOM_ASSIGN_OR_RETURN(parts[k], Expression(true));
      }
      if (IsOp(":") && k < 2) {
        slice = true;
        ++i_;
        continue;
      }
      break;
    }
    LOOM_RETURN_IF_ERROR(ExpectOp("]"));
    ExprPtr e = Make(slice ? Expr::Kind::kSlice : Expr::Kind::kGetItem, line);
    e->args.push_back(std::move(obj));
    if (!slice && !parts[0]) return Err("empty subscript");
    for (int k = 0; k < (slice ? 3 : 1); ++k) e->args.push_back(std::move(parts[k]));
    return e;
  }

  // `(args, kw=value)` after `callee`; for filters and tests the operand is args[0].
  absl::StatusOr<ExprPtr> Call(ExprPtr callee, Expr::Kind kind, std::string name) {
    ExprPtr e = Make(kind, Cur().line);
    e->name = std::move(name);
    e->args.push_back(std::move(callee));
    LOOM_RETURN_IF_ERROR(ExpectOp("("));
    while (!IsOp(")")) {
      if (Cur().type == TokenType::kName && Peek().type == TokenType::kOp && Peek().value == "=") {
        std::string kw = t_[i_].value;
        i_ += 2;
        LOOM_ASSIGN_OR_RETURN(ExprPtr v, Expression(true));
        e->kwargs.emplace_back(kw, std::move(v));
      } else {
        if (!e->kwargs.empty()) return Err("positional argument after keyword argument");
        LOOM_ASSIGN_OR_RETURN(ExprPtr v, Expression(true));
        e->args.push_back(std::move(v));
      }
      if (!IsOp(",")) break;
      ++i_;
    }
    LOOM_RETURN_IF_ERROR(ExpectOp(")"));
    return e;
  }

  absl::StatusOr<ExprPtr> FilterExpr(ExprPtr node) {
    while (true) {
      if (IsOp("|")) {
        ++i_;
        int line = Cur().line;
        LOOM_ASSIGN_OR_RETURN(std::string name, Identifier());
        if (!Filters().contains(name)) {
          --i_;
          return Err(absl::StrCat("unknown filter '", name, "'"));
        }
        if (IsOp("(")) {
          LOOM_ASSIGN_OR_RETURN(node, Call(std::move(node), Expr::Kind::kFilter, name));
        } else {
          ExprPtr e = Make(Expr::Kind::kFilter, line);
          e->name = name;
          e->args.push_back(std::move(node));
          node = std::move(e);
        }
        node->line = line;
      } else if (IsName("is")) {
        int line = Cur().line;
        ++i_;
        bool negated = false;
        if (IsName("not")) {
          negated = true;
          ++i_;
        }
        LOOM_ASSIGN_OR_RETURN(std::string name, Identifier());
        if (!Tests().contains(name)) {
          --i_;
          return Err(absl::StrCat("unknown test '", name, "'"));
        }
        if (IsOp("(")) {
          LOOM_ASSIGN_OR_RETURN(node, Call(std::move(node), Expr::Kind::kTest, name));
        } else {
          ExprPtr e = Make(Expr::Kind::kTest, line);
          e->name = name;
          e->args.push_back(std::move(node));
          // `x is equalto 3`: one argument without parentheses.
          const Token& c = Cur();
          bool arg = c.type == TokenType::kString || c.type == TokenType::kInt || c.type == TokenType::kFloat ||
                     (c.type == TokenType::kName && c.value != "else" && c.value != "or" && c.value != "and");
          if (arg) {
            LOOM_ASSIGN_OR_RETURN(ExprPtr a, Unary(false));
            e->args.push_back(std::move(a));
          }
          node = std::move(e);
        }
        node->negated = negated;
        node->line = line;
      } else if (IsOp("(")) {
        LOOM_ASSIGN_OR_RETURN(node, Call(std::move(node), Expr::Kind::kCall, ""));
      } else {
        return node;
      }
    }
  }

  const std::vector<Token>& t_;
  size_t i_ = 0;
  int loop_depth_ = 0;
};

}  // namespace

absl::StatusOr<Body> ParseTokens(const std::vector<Token>& tokens) { return Parser(tokens).Template(); }

}  // namespace loom::chat_template
