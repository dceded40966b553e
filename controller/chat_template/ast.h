// The parsed template: statements (Node) holding expressions (Expr). Built by the parser, walked
// by the evaluator; immutable after parsing.
#ifndef LOOM_CONTROLLER_CHAT_TEMPLATE_AST_H_
#define LOOM_CONTROLLER_CHAT_TEMPLATE_AST_H_

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "controller/chat_template/value.h"

namespace loom::chat_template {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  enum class Kind {
    kLiteral,    // literal
    kName,       // name
    kList,       // args: items (also tuples)
    kDict,       // args: key0, value0, key1, value1, ...
    kGetAttr,    // args[0].name
    kGetItem,    // args[0][args[1]]
    kSlice,      // args[0][args[1]:args[2]:args[3]], absent parts null
    kCall,       // args[0](args[1:], kwargs)
    kFilter,     // args[0] | name(args[1:], kwargs)
    kTest,       // args[0] is [not] name(args[1:]); negated
    kUnary,      // name in {"not", "-", "+"}: args[0]
    kBinary,     // name: + - * / // % ** ~ == != < > <= >= in notin; args[0], args[1]
    kAnd,
    kOr,
    kCondition,  // args[1] if args[0] else args[2] (null: undefined)
  };
  Kind kind;
  int line = 0;
  std::string name;
  Value literal;
  bool negated = false;
  std::vector<ExprPtr> args;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
};

struct Node;
using NodePtr = std::unique_ptr<Node>;
using Body = std::vector<NodePtr>;

struct Node {
  enum class Kind {
    kText,      // text
    kOutput,    // {{ expr }}
    kIf,        // branches: (cond, body)...; a null cond is the else
    kFor,       // for targets in expr [if filter]: body [else else_body]
    kSet,       // set targets = expr, or set targets[0].attr = expr
    kSetBlock,  // set targets[0] %}body{% endset
    kMacro,     // macro name(params=defaults): body
    kBreak,
    kContinue,
    kScope,     // a block that just renders its body ({% generation %})
  };
  Kind kind;
  int line = 0;
  std::string text;  // text, macro name
  ExprPtr expr;
  ExprPtr filter;
  std::vector<std::string> targets;
  std::string attr;
  std::vector<std::pair<ExprPtr, Body>> branches;
  Body body;
  Body else_body;
  std::vector<std::string> params;
  std::vector<ExprPtr> defaults;  // one per param, null where none
};

}  // namespace loom::chat_template

#endif  // LOOM_CONTROLLER_CHAT_TEMPLATE_AST_H_
