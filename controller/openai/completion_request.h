// POST /v1/completions: the request body, read and checked into engine requests.
//
// Fields (OpenAI's, plus vLLM's extensions): model, prompt (a string, a list of strings, a list
// of token ids, or a list of such lists), max_tokens (default 16), temperature (default 1),
// top_p, top_k (extension), seed, stop (a string or a list), n (1..kMaxN), logprobs (0..20),
// stream, stream_options.include_usage, ignore_eos (extension), presence_penalty and
// frequency_penalty ([-2, 2]), repetition_penalty (extension, > 0). echo is refused; unknown fields are ignored, as OpenAI's SDK
// sends fields a server may not know. Every error names its field (`param`).
#ifndef LOOM_CONTROLLER_OPENAI_COMPLETION_REQUEST_H_
#define LOOM_CONTROLLER_OPENAI_COMPLETION_REQUEST_H_

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "controller/serving_engine.h"

namespace loom::openai {

inline constexpr int kMaxN = ServingEngine::kMaxChoices;

struct CompletionRequest {
  std::string model;
  // One per prompt; the n choices of a prompt are n copies with seeds seed, seed + 1, ...
  std::vector<ServingRequest> prompts;
  int n = 1;
  int logprobs = -1;  // top logprobs per token; -1 none
  bool stream = false;
  bool include_usage = false;
};

// `served_model` is the name the server answers to (GET /v1/models); another name is NotFound.
absl::StatusOr<CompletionRequest> ParseCompletionRequest(const nlohmann::json& body,
                                                         const std::string& served_model);

}  // namespace loom::openai

#endif  // LOOM_CONTROLLER_OPENAI_COMPLETION_REQUEST_H_
