#include "controller/openai/chat_request.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "controller/openai/api_error.h"

namespace loom::openai {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using nlohmann::ordered_json;

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// tokenizer_config.json holds special tokens as strings or as {"content": ...} objects.
std::string Token(const json& config, const char* key) {
  auto it = config.find(key);
  if (it == config.end()) return "";
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string()) {
    return (*it)["content"].get<std::string>();
  }
  return "";
}

}  // namespace

absl::StatusOr<std::shared_ptr<const ModelChatTemplate>> LoadChatTemplate(const std::string& dir) {
  json config = json::object();
  if (fs::exists(fs::path(dir) / "tokenizer_config.json")) {
    config = json::parse(ReadFile(fs::path(dir) / "tokenizer_config.json"), nullptr, false);
    if (config.is_discarded()) {
      return absl::InvalidArgumentError(absl::StrCat(dir, "/tokenizer_config.json is not JSON"));
    }
  }
  std::string source, name = absl::StrCat(dir, "/chat_template.jinja");
  if (fs::exists(fs::path(dir) / "chat_template.jinja")) {
    source = ReadFile(fs::path(dir) / "chat_template.jinja");
  } else if (auto it = config.find("chat_template"); it != config.end()) {
    name = absl::StrCat(dir, "/tokenizer_config.json");
    if (it->is_string()) {
      source = it->get<std::string>();
    } else if (it->is_array()) {
      for (const json& t : *it) {
        if (t.is_object() && t.value("name", "") == "default" && t.contains("template")) {
          source = t["template"].get<std::string>();
        }
      }
    }
  }
  if (source.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the model has no chat template (", dir,
        " has no chat_template.jinja and tokenizer_config.json names none); use "
        "/v1/completions"));
  }
  LOOM_ASSIGN_OR_RETURN(chat_template::ChatTemplate parsed,
                        chat_template::ChatTemplate::Parse(source, name));
  return std::make_shared<const ModelChatTemplate>(ModelChatTemplate{
      std::move(parsed), Token(config, "bos_token"), Token(config, "eos_token")});
}

absl::StatusOr<CompletionRequest> ParseChatRequest(const ordered_json& body,
                                                   const std::string& served_model,
                                                   const ModelChatTemplate& chat,
                                                   const tokenizer::Tokenizer& tokenizer) {
  if (!body.is_object()) return BadParam("", "the request body must be a JSON object");
  auto messages = body.find("messages");
  if (messages == body.end() || !messages->is_array() || messages->empty()) {
    return BadParam("messages", "messages: required, a non-empty list");
  }
  ordered_json context = ordered_json::object();
  ordered_json list = ordered_json::array();
  for (const ordered_json& m : *messages) {
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string()) {
      return BadParam("messages", "messages: each message needs a string role");
    }
    ordered_json message = m;
    if (m.contains("content") && m["content"].is_array()) {
      std::string text;
      for (const ordered_json& part : m["content"]) {
        if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") ||
            !part["text"].is_string()) {
          return BadParam("messages", "messages: content parts must be {\"type\": \"text\"}");
        }
        text += part["text"].get<std::string>();
      }
      message["content"] = text;
    } else if (m.contains("content") && !m["content"].is_string() && !m["content"].is_null()) {
      return BadParam("messages", "messages: content must be a string or a list of text parts");
    }
    list.push_back(std::move(message));
  }
  const bool continue_final = body.value("continue_final_message", false);
  const bool generation_prompt = body.value("add_generation_prompt", !continue_final);
  if (continue_final && generation_prompt) {
    return BadParam("continue_final_message",
                    "continue_final_message and add_generation_prompt cannot both be true");
  }
  context["messages"] = list;
  for (const char* key : {"tools", "documents"}) {
    if (auto it = body.find(key); it != body.end() && !it->is_null()) context[key] = *it;
  }
  context["add_generation_prompt"] = generation_prompt;
  context["bos_token"] = chat.bos_token;
  context["eos_token"] = chat.eos_token;
  if (auto kwargs = body.find("chat_template_kwargs"); kwargs != body.end()) {
    if (!kwargs->is_object()) {
      return BadParam("chat_template_kwargs", "chat_template_kwargs: expected an object");
    }
    for (auto it = kwargs->begin(); it != kwargs->end(); ++it) context[it.key()] = it.value();
  }
  absl::StatusOr<std::string> rendered = chat.chat.Render(context);
  if (!rendered.ok()) return BadParam("messages", std::string(rendered.status().message()));
  std::string prompt = *rendered;
  if (continue_final) {
    const ordered_json& last = list.back();
    const std::string content = last.value("content", "");
    const size_t at = content.empty() ? std::string::npos : prompt.rfind(content);
    if (at == std::string::npos) {
      return BadParam("continue_final_message",
                      "continue_final_message: the final message's content is not in the "
                      "rendered prompt");
    }
    prompt.resize(at + content.size());
  }
  absl::StatusOr<std::vector<int32_t>> ids = tokenizer.Encode(prompt, false);
  if (!ids.ok()) return BadParam("messages", std::string(ids.status().message()));
  if (ids->empty()) return BadParam("messages", "the conversation renders to no tokens");

  // The rest is a completion's: a prompt of ids, chat's names for the limits and logprobs.
  json completion = json::parse(body.dump());
  completion.erase("messages");
  completion["prompt"] = *ids;
  if (completion.contains("max_completion_tokens")) {
    completion["max_tokens"] = completion["max_completion_tokens"];
  } else if (!completion.contains("max_tokens") || completion["max_tokens"].is_null()) {
    completion["max_tokens"] = int64_t{1} << 30;  // until done; the scheduler stops at the limit
  }
  const json logprobs = completion.value("logprobs", json(false));
  if (!logprobs.is_boolean()) return BadParam("logprobs", "logprobs: expected true or false");
  if (logprobs.get<bool>()) {
    completion["logprobs"] = completion.value("top_logprobs", json(0));
  } else {
    if (completion.contains("top_logprobs") && !completion["top_logprobs"].is_null()) {
      return BadParam("top_logprobs", "top_logprobs: needs logprobs: true");
    }
    completion.erase("logprobs");
  }
  return ParseCompletionRequest(completion, served_model);
}

}  // namespace loom::openai
