// Renders a parsed template body against a set of variables (Jinja2's runtime semantics: scopes,
// undefined, loops, macros, the globals transformers adds).
#ifndef LOOM_CONTROLLER_CHAT_TEMPLATE_EVALUATOR_H_
#define LOOM_CONTROLLER_CHAT_TEMPLATE_EVALUATOR_H_

#include <string>

#include "absl/status/statusor.h"
#include "controller/chat_template/ast.h"
#include "controller/chat_template/chat_template.h"
#include "controller/chat_template/value.h"

namespace loom::chat_template {

// `variables` must be a dict. Errors: see ChatTemplate::Render (the caller adds the name).
// raise_exception's errors carry `*raised = true`.
absl::StatusOr<std::string> RenderBody(const Body& body, const Value& variables, const RenderOptions& options,
                                       bool* raised, int* error_line);

}  // namespace loom::chat_template

#endif  // LOOM_CONTROLLER_CHAT_TEMPLATE_EVALUATOR_H_
