#include "controller/openai/completion_request.h"

#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "controller/openai/api_error.h"

namespace loom::openai {
namespace {

using nlohmann::json;

const json* Field(const json& body, const char* key) {
  auto it = body.find(key);
  return it == body.end() || it->is_null() ? nullptr : &*it;
}

absl::StatusOr<double> Number(const json& body, const char* key, double fallback) {
  const json* v = Field(body, key);
  if (v == nullptr) return fallback;
  if (!v->is_number()) return BadParam(key, absl::StrCat(key, ": expected a number"));
  return v->get<double>();
}

absl::StatusOr<int64_t> Integer(const json& body, const char* key, int64_t fallback) {
  const json* v = Field(body, key);
  if (v == nullptr) return fallback;
  if (!v->is_number_integer()) return BadParam(key, absl::StrCat(key, ": expected an integer"));
  return v->get<int64_t>();
}

absl::StatusOr<bool> Boolean(const json& body, const char* key, bool fallback) {
  const json* v = Field(body, key);
  if (v == nullptr) return fallback;
  if (!v->is_boolean()) return BadParam(key, absl::StrCat(key, ": expected true or false"));
  return v->get<bool>();
}

absl::StatusOr<std::vector<int32_t>> TokenIds(const json& list) {
  std::vector<int32_t> ids;
  for (const json& id : list) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 ||
        id.get<int64_t>() > std::numeric_limits<int32_t>::max()) {
      return BadParam("prompt", "prompt: token ids must be non-negative integers");
    }
    ids.push_back(id.get<int32_t>());
  }
  return ids;
}

// A string, a list of strings, a list of ids, or a list of lists of ids.
absl::Status ReadPrompts(const json& prompt, std::vector<ServingRequest>& out) {
  auto text = [&out](const std::string& s) {
    ServingRequest r;
    r.prompt = s;
    out.push_back(std::move(r));
  };
  if (prompt.is_string()) {
    text(prompt.get<std::string>());
  } else if (prompt.is_array() && !prompt.empty() && prompt.front().is_number()) {
    LOOM_ASSIGN_OR_RETURN(std::vector<int32_t> ids, TokenIds(prompt));
    out.emplace_back().generation.prompt_ids = std::move(ids);
  } else if (prompt.is_array() && !prompt.empty()) {
    for (const json& p : prompt) {
      if (p.is_string()) {
        text(p.get<std::string>());
      } else if (p.is_array() && !p.empty()) {
        LOOM_ASSIGN_OR_RETURN(std::vector<int32_t> ids, TokenIds(p));
        out.emplace_back().generation.prompt_ids = std::move(ids);
      } else {
        return BadParam("prompt", "prompt: each prompt must be a string or a list of token ids");
      }
    }
  } else {
    return BadParam("prompt",
                    "prompt: expected a string, a list of strings or a list of token ids");
  }
  for (const ServingRequest& r : out) {
    if (r.prompt.empty() && r.generation.prompt_ids.empty()) {
      return BadParam("prompt", "prompt: empty");
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<CompletionRequest> ParseCompletionRequest(const json& body,
                                                         const std::string& served_model) {
  if (!body.is_object()) return BadParam("", "the request body must be a JSON object");
  CompletionRequest request;
  const json* model = Field(body, "model");
  if (model == nullptr || !model->is_string()) {
    return BadParam("model", "model: required, a string (GET /v1/models lists it)");
  }
  request.model = model->get<std::string>();
  if (request.model != served_model) {
    absl::Status s = absl::NotFoundError(absl::StrCat("the model `", request.model,
                                                      "` does not exist; this server serves `",
                                                      served_model, "`"));
    return s;
  }
  const json* prompt = Field(body, "prompt");
  if (prompt == nullptr) return BadParam("prompt", "prompt: required");
  LOOM_RETURN_IF_ERROR(ReadPrompts(*prompt, request.prompts));

  GenerationRequest g;
  LOOM_ASSIGN_OR_RETURN(g.max_tokens, Integer(body, "max_tokens", 16));
  if (g.max_tokens < 1) return BadParam("max_tokens", "max_tokens: must be at least 1");
  LOOM_ASSIGN_OR_RETURN(const double temperature, Number(body, "temperature", 1.0));
  if (!(temperature >= 0) || !std::isfinite(temperature) || temperature > 100) {
    return BadParam("temperature", "temperature: must be in [0, 100]");
  }
  g.sampling.temperature = static_cast<float>(temperature);
  LOOM_ASSIGN_OR_RETURN(const double top_p, Number(body, "top_p", 1.0));
  if (!(top_p > 0 && top_p <= 1)) return BadParam("top_p", "top_p: must be in (0, 1]");
  g.sampling.top_p = static_cast<float>(top_p);
  LOOM_ASSIGN_OR_RETURN(const int64_t top_k, Integer(body, "top_k", 0));
  if (top_k < -1 || top_k > std::numeric_limits<int32_t>::max()) {
    return BadParam("top_k", "top_k: must be -1 (no limit), 0 (no limit) or positive");
  }
  g.sampling.top_k = static_cast<int32_t>(top_k < 0 ? 0 : top_k);
  LOOM_ASSIGN_OR_RETURN(const int64_t seed, Integer(body, "seed", 0));
  g.sampling.seed = static_cast<uint64_t>(seed);
  LOOM_ASSIGN_OR_RETURN(g.ignore_eos, Boolean(body, "ignore_eos", false));
  if (const json* stop = Field(body, "stop")) {
    if (stop->is_string()) {
      g.stop_strings.push_back(stop->get<std::string>());
    } else if (stop->is_array()) {
      for (const json& s : *stop) {
        if (!s.is_string()) return BadParam("stop", "stop: expected a string or strings");
        g.stop_strings.push_back(s.get<std::string>());
      }
    } else {
      return BadParam("stop", "stop: expected a string or a list of strings");
    }
  }
  LOOM_ASSIGN_OR_RETURN(const int64_t logprobs, Integer(body, "logprobs", -1));
  if (logprobs < -1 || logprobs > kMaxTopLogprobs) {
    return BadParam("logprobs", absl::StrCat("logprobs: must be in [0, ", kMaxTopLogprobs, "]"));
  }
  request.logprobs = static_cast<int>(logprobs);
  g.sampling.logprobs = static_cast<int32_t>(logprobs);
  LOOM_ASSIGN_OR_RETURN(const int64_t n, Integer(body, "n", 1));
  if (n < 1 || n > kMaxN) return BadParam("n", absl::StrCat("n: must be in [1, ", kMaxN, "]"));
  request.n = static_cast<int>(n);
  if (const json* best_of = Field(body, "best_of"); best_of != nullptr && *best_of != n) {
    return BadParam("best_of", "best_of: not supported (only best_of == n)");
  }
  LOOM_ASSIGN_OR_RETURN(const bool echo, Boolean(body, "echo", false));
  if (echo) return BadParam("echo", "echo: not supported yet");
  LOOM_ASSIGN_OR_RETURN(const double presence, Number(body, "presence_penalty", 0.0));
  LOOM_ASSIGN_OR_RETURN(const double frequency, Number(body, "frequency_penalty", 0.0));
  if (!(presence >= -2 && presence <= 2)) {
    return BadParam("presence_penalty", "presence_penalty: must be in [-2, 2]");
  }
  if (!(frequency >= -2 && frequency <= 2)) {
    return BadParam("frequency_penalty", "frequency_penalty: must be in [-2, 2]");
  }
  LOOM_ASSIGN_OR_RETURN(const double repetition, Number(body, "repetition_penalty", 1.0));
  if (!(repetition > 0) || !std::isfinite(repetition)) {
    return BadParam("repetition_penalty", "repetition_penalty: must be > 0 (1 = none)");
  }
  g.sampling.presence_penalty = static_cast<float>(presence);
  g.sampling.frequency_penalty = static_cast<float>(frequency);
  g.sampling.repetition_penalty = static_cast<float>(repetition);
  LOOM_ASSIGN_OR_RETURN(request.stream, Boolean(body, "stream", false));
  if (const json* options = Field(body, "stream_options")) {
    if (!options->is_object()) return BadParam("stream_options", "stream_options: expected an object");
    LOOM_ASSIGN_OR_RETURN(request.include_usage, Boolean(*options, "include_usage", false));
  }
  for (ServingRequest& r : request.prompts) {
    std::vector<int32_t> ids = std::move(r.generation.prompt_ids);
    r.generation = g;
    r.generation.prompt_ids = std::move(ids);
  }
  return request;
}

}  // namespace loom::openai
