// Splits a template into tokens the way Jinja2's lexer does under Hugging Face's settings
// (trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=False): template text, with
// whitespace control already applied, and the tokens inside {{ }} and {% %}. Comments are dropped.
//
// Whitespace rules (Jinja2 3.1):
//  * `{%-`, `{{-`, `{#-` strip all whitespace before the tag; `-%}`, `-}}`, `-#}` all after it.
//  * trim_blocks: a `%}` or `#}` (without `-`) eats one newline right after it.
//  * lstrip_blocks: spaces and tabs between a line start and a `{%` or `{#` (not `{{`, not `{%+`)
//    are removed.
//  * One trailing newline at the end of the template is dropped; "\r\n" and "\r" become "\n".
#ifndef LOOM_CONTROLLER_CHAT_TEMPLATE_LEXER_H_
#define LOOM_CONTROLLER_CHAT_TEMPLATE_LEXER_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace loom::chat_template {

enum class TokenType { kText, kVarBegin, kVarEnd, kBlockBegin, kBlockEnd, kName, kString, kInt, kFloat, kOp, kEof };

struct Token {
  TokenType type;
  std::string value;  // text, name, decoded string literal, number spelling or operator
  int line = 1;
};

// Errors (InvalidArgument "line N: ...") for unterminated tags, strings or comments and for
// characters that start no token.
absl::StatusOr<std::vector<Token>> Tokenize(const std::string& source);

}  // namespace loom::chat_template

#endif  // LOOM_CONTROLLER_CHAT_TEMPLATE_LEXER_H_
