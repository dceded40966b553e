// Jinja2 statements and expressions (the subset Hugging Face chat templates use) to an AST.
// Precedence follows Jinja2's parser: ternary < or < and < not < comparisons/in < + - < ~ <
// * / // % < ** < unary - + < postfix (. [] ()) and filters/tests.
#ifndef LOOM_CONTROLLER_CHAT_TEMPLATE_PARSER_H_
#define LOOM_CONTROLLER_CHAT_TEMPLATE_PARSER_H_

#include <vector>

#include "absl/status/statusor.h"
#include "controller/chat_template/ast.h"
#include "controller/chat_template/lexer.h"

namespace loom::chat_template {

// Errors (InvalidArgument "line N: ...") for syntax errors, unknown statements and unknown
// filter, test or method names.
absl::StatusOr<Body> ParseTokens(const std::vector<Token>& tokens);

}  // namespace loom::chat_template

#endif  // LOOM_CONTROLLER_CHAT_TEMPLATE_PARSER_H_
