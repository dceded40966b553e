// A Hugging Face chat template: Jinja2 source parsed once, rendered per request. Its output equals
// transformers' `apply_chat_template(messages, tokenize=False, ...)` (Jinja2 3.1 with
// trim_blocks, lstrip_blocks, loopcontrols, and transformers' raise_exception, strftime_now,
// namespace and tojson), byte for byte on the templates under tests/data/chat_templates.
//
// Supported: {{ }}, {% %}, {# #}, whitespace control (- and +); if/elif/else, for (tuple targets,
// `if` filter, else, loop.*, break/continue), set (plain, ns.attr, tuple, block), macro,
// generation; the expression grammar of Jinja2 with the filters, tests and methods in
// builtins.h. Not supported (Parse fails): include/import/extends/block, call blocks, filter
// blocks, recursive loops, raw. Case mapping (upper/lower/title) is ASCII-only.
//
// Thread safety: a parsed ChatTemplate is immutable; Render may run concurrently.
#ifndef LOOM_CONTROLLER_CHAT_TEMPLATE_CHAT_TEMPLATE_H_
#define LOOM_CONTROLLER_CHAT_TEMPLATE_CHAT_TEMPLATE_H_

#include <ctime>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace loom::chat_template {

struct Node;

struct RenderOptions {
  // The local time `strftime_now(fmt)` formats (Python's datetime.now()); null reads the system
  // clock. Tests freeze it.
  std::function<std::tm()> now;
};

class ChatTemplate {
 public:
  // Errors: InvalidArgument "chat template '<name>' line N: ..." for syntax errors and for any
  // filter, test or method name that is not supported.
  static absl::StatusOr<ChatTemplate> Parse(std::string source, std::string name);

  // `context` holds the template's variables: messages, tools, documents, add_generation_prompt,
  // bos_token, eos_token and any extra kwargs. Dicts keep the order they have in `context`, which
  // decides the key order `tojson` prints: pass an ordered_json (a plain json sorts keys).
  // continue_final_message is the caller's (as in transformers, it edits the messages and the output).
  // Errors (InvalidArgument): raise_exception('msg') returns exactly 'msg'; other data-dependent
  // failures (type errors, undefined attribute access) "chat template '<name>' line N: ...".
  absl::StatusOr<std::string> Render(const nlohmann::ordered_json& context, const RenderOptions& options = {}) const;
  absl::StatusOr<std::string> Render(const nlohmann::json& context, const RenderOptions& options = {}) const;

  const std::string& name() const { return name_; }
  const std::string& source() const { return source_; }

 private:
  ChatTemplate() = default;
  std::string source_;
  std::string name_;
  std::shared_ptr<const std::vector<std::unique_ptr<Node>>> body_;
};

}  // namespace loom::chat_template

#endif  // LOOM_CONTROLLER_CHAT_TEMPLATE_CHAT_TEMPLATE_H_
