// POST /v1/chat/completions: the model's chat template and the request rendered through it.
//
// The template is the model directory's chat_template.jinja, else tokenizer_config.json's
// `chat_template` (the "default" one of a named list), parsed once per directory
// (controller/chat_template); bos_token and eos_token come from tokenizer_config.json. The
// context is what transformers passes: messages (content as text, or a list of text parts,
// which are joined), tools, documents, add_generation_prompt (default true),
// continue_final_message (the reply continues the last message: rendered without the
// generation prompt and cut after that message's content), and chat_template_kwargs merged in.
// The rendered text is tokenized without special tokens (the template wrote them) and the rest
// of the body is read as a completion's: max_completion_tokens or max_tokens (default: up to
// the model's length), logprobs (a bool) with top_logprobs, and the sampling fields.
#ifndef LOOM_CONTROLLER_OPENAI_CHAT_REQUEST_H_
#define LOOM_CONTROLLER_OPENAI_CHAT_REQUEST_H_

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "absl/status/statusor.h"
#include "controller/chat_template/chat_template.h"
#include "controller/openai/completion_request.h"
#include "controller/tokenizer/tokenizer.h"

namespace loom::openai {

struct ModelChatTemplate {
  chat_template::ChatTemplate chat;
  std::string bos_token, eos_token;
};

// FailedPrecondition when the directory has no chat template; InvalidArgument (naming the
// template and line) when it does not parse.
absl::StatusOr<std::shared_ptr<const ModelChatTemplate>> LoadChatTemplate(const std::string& dir);

// `body` as sent (key order kept: it decides what `tojson` prints of tools).
absl::StatusOr<CompletionRequest> ParseChatRequest(const nlohmann::ordered_json& body,
                                                   const std::string& served_model,
                                                   const ModelChatTemplate& chat,
                                                   const tokenizer::Tokenizer& tokenizer);

}  // namespace loom::openai

#endif  // LOOM_CONTROLLER_OPENAI_CHAT_REQUEST_H_
