#include "controller/chat_template/chat_template.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "controller/chat_template/evaluator.h"
#include "controller/chat_template/lexer.h"
#include "controller/chat_template/parser.h"

namespace loom::chat_template {

absl::StatusOr<ChatTemplate> ChatTemplate::Parse(std::string source, std::string name) {
  auto fail = [&name](const absl::Status& st) {
    return absl::InvalidArgumentError(absl::StrCat("chat template '", name, "' ", st.message()));
  };
  auto tokens = Tokenize(source);
  if (!tokens.ok()) return fail(tokens.status());
  auto body = ParseTokens(*tokens);
  if (!body.ok()) return fail(body.status());
  ChatTemplate t;
  t.source_ = std::move(source);
  t.name_ = std::move(name);
  t.body_ = std::make_shared<const Body>(std::move(*body));
  return t;
}

static absl::StatusOr<std::string> RenderValue(const ChatTemplate& t, const Body& body, const Value& vars,
                                               const RenderOptions& options) {
  if (!vars.IsDict()) return absl::InvalidArgumentError("chat template context must be a JSON object");
  bool raised = false;
  int line = 0;
  auto out = RenderBody(body, vars, options, &raised, &line);
  if (out.ok() || raised) return out;
  return absl::InvalidArgumentError(
      absl::StrCat("chat template '", t.name(), "' line ", line, ": ", out.status().message()));
}

absl::StatusOr<std::string> ChatTemplate::Render(const nlohmann::ordered_json& context,
                                                 const RenderOptions& options) const {
  return RenderValue(*this, *body_, Value::FromJson(context), options);
}

absl::StatusOr<std::string> ChatTemplate::Render(const nlohmann::json& context, const RenderOptions& options) const {
  return RenderValue(*this, *body_, Value::FromJson(context), options);
}

}  // namespace loom::chat_template
