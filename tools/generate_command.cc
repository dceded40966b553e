// `loom generate`: run prompts (text or token ids) through a model — in this process, on the
// serving engine with its rank here, or on a running server — and print what comes back.
#include <cstdio>
#include <iostream>
#include <chrono>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status.h"
#include "controller/in_process_executor.h"
#include "controller/serving_engine.h"
#include "tools/commands.h"
#include "tools/engine_flags.h"
#include "tools/server_client.h"

namespace loom::cli {
namespace {

std::vector<FlagSpec> GenerateFlagSpecs() {
  std::vector<FlagSpec> specs = EngineFlagSpecs();
  std::vector<FlagSpec> more = {
      {"prompt-ids", false, "comma-separated prompt token ids; repeat for a batch", ""},
      {"prompt", false, "prompt text (needs the model's tokenizer.json)", ""},
      {"max-tokens", false, "new tokens per prompt", "32"},
      {"device", false, "where the model runs: cpu, cuda or cuda:K", "cpu"},
      {"temperature", false, "0 = greedy", "0"},
      {"top-k", false, "keep the k most likely tokens (0 = all)", "0"},
      {"top-p", false, "keep the smallest set with this much probability", "1"},
      {"seed", false, "sampling seed (prompt i uses seed + i)", "0"},
      {"stop-ids", false, "comma-separated token ids that end a sequence", ""},
      {"stop", false, "text that ends a sequence before it (repeat for several)", ""},
      {"ignore-eos", true, "keep going past the model's end-of-sequence tokens", ""},
      {"json", true, "print one JSON object per prompt instead of text", ""},
      {"help", true, "show this help", ""},
  };
  specs.insert(specs.end(), more.begin(), more.end());
  std::vector<FlagSpec> client = ClientFlagSpecs();
  specs.insert(specs.end(), client.begin(), client.end());
  return specs;
}

absl::Status Run(const Flags& flags) {
  if (!flags.Has("model") || flags.Has("address")) {
    if (flags.Has("model")) {
      return absl::InvalidArgumentError("--model (in this process) and --address (on a server) "
                                        "exclude each other");
    }
    return GenerateOnServer(flags);
  }
  LOOM_ASSIGN_OR_RETURN(EngineConfig config, EngineConfigFromFlags(flags));
  // One request per --prompt-ids (a batch), or the one --prompt.
  std::vector<ServingRequest> requests;
  if (flags.Has("prompt")) {
    if (flags.Has("prompt-ids")) {
      return absl::InvalidArgumentError("--prompt and --prompt-ids exclude each other");
    }
    requests.emplace_back().prompt = flags.String("prompt");
  }
  for (const std::string& ids_text : flags.All("prompt-ids")) {
    LOOM_ASSIGN_OR_RETURN(std::vector<int64_t> ids, ParseIntList(ids_text, "--prompt-ids"));
    requests.emplace_back().generation.prompt_ids.assign(ids.begin(), ids.end());
  }
  if (requests.empty()) return absl::InvalidArgumentError("--prompt TEXT or --prompt-ids is required");
  GenerationRequest base;
  LOOM_ASSIGN_OR_RETURN(base.max_tokens, flags.Int("max-tokens", 32));
  LOOM_ASSIGN_OR_RETURN(double temperature, flags.Double("temperature", 0));
  LOOM_ASSIGN_OR_RETURN(double top_p, flags.Double("top-p", 1));
  LOOM_ASSIGN_OR_RETURN(int64_t top_k, flags.Int("top-k", 0));
  LOOM_ASSIGN_OR_RETURN(int64_t seed, flags.Int("seed", 0));
  base.sampling.temperature = static_cast<float>(temperature);
  base.sampling.top_p = static_cast<float>(top_p);
  base.sampling.top_k = static_cast<int32_t>(top_k);
  base.ignore_eos = flags.Bool("ignore-eos");
  if (flags.Has("stop-ids")) {
    LOOM_ASSIGN_OR_RETURN(std::vector<int64_t> stops, ParseIntList(flags.String("stop-ids"), "--stop-ids"));
    base.stop_token_ids.assign(stops.begin(), stops.end());
  }
  base.stop_strings = flags.All("stop");
  LOOM_RETURN_IF_ERROR(ValidateSamplingParams(base.sampling));
  if (base.max_tokens <= 0) return absl::InvalidArgumentError("--max-tokens must be positive");
  for (size_t i = 0; i < requests.size(); ++i) {
    std::vector<int32_t> ids = std::move(requests[i].generation.prompt_ids);
    requests[i].generation = base;
    requests[i].generation.prompt_ids = std::move(ids);
    requests[i].generation.sampling.seed = static_cast<uint64_t>(seed) + i;
  }

  // The serving engine, its one rank in this process.
  ServingEngineOptions options;
  options.config = config;
  InProcessOptions in_process;
  in_process.device = flags.String("device", "cpu");
  LOOM_ASSIGN_OR_RETURN(std::unique_ptr<ServingEngine> engine, StartInProcessEngine(options, in_process));
  const EngineStatus status = engine->Status();
  std::fprintf(stderr, "loom: %s, %lld layers, %lld KV blocks of %lld tokens%s\n",
               engine->model_config().architecture.c_str(),
               static_cast<long long>(engine->model_config().num_hidden_layers),
               static_cast<long long>(status.num_kv_blocks),
               static_cast<long long>(config.cache.block_size),
               engine->has_tokenizer() ? ", tokenizer loaded" : "");
  std::vector<std::shared_ptr<RequestStream>> streams;
  for (ServingRequest& r : requests) {
    LOOM_ASSIGN_OR_RETURN(std::shared_ptr<RequestStream> stream, engine->Submit(std::move(r)));
    streams.push_back(std::move(stream));
  }
  const bool json = flags.Bool("json");
  const bool stream = streams.size() == 1 && !json;
  if (stream) {
    // One prompt: its text (or ids, without a tokenizer) as it comes.
    GenerateDelta delta;
    while (true) {
      if (!streams[0]->Next(&delta, std::chrono::seconds(1))) continue;
      LOOM_RETURN_IF_ERROR(delta.error);
      if (engine->has_tokenizer()) {
        std::fputs(delta.text.c_str(), stdout);
      } else {
        for (int32_t id : delta.token_ids) std::printf("%d ", id);
      }
      std::fflush(stdout);
      if (delta.done) break;
    }
    std::printf("\n[finish: %s, %lld prompt + %lld completion tokens]\n",
                FinishReasonName(delta.finish_reason), static_cast<long long>(delta.prompt_tokens),
                static_cast<long long>(delta.completion_tokens));
    return absl::OkStatus();
  }
  for (size_t i = 0; i < streams.size(); ++i) {
    LOOM_ASSIGN_OR_RETURN(Completion c, WaitForCompletion(*streams[i]));
    if (json) {
      nlohmann::json out = {{"prompt", i},
                            {"output_ids", c.token_ids},
                            {"text", c.text},
                            {"finish_reason", FinishReasonName(c.finish_reason)},
                            {"prompt_tokens", c.prompt_tokens},
                            {"completion_tokens", c.completion_tokens}};
      std::printf("%s\n", out.dump().c_str());
    } else {
      std::printf("prompt %zu: %s [finish: %s]\n", i,
                  engine->has_tokenizer() ? c.text.c_str() : absl::StrJoin(c.token_ids, " ").c_str(),
                  FinishReasonName(c.finish_reason));
    }
  }
  return absl::OkStatus();
}

}  // namespace

int GenerateCommand(int argc, char** argv) {
  return RunVerb("generate", argc, argv, GenerateFlagSpecs(), 
                 "usage: loom generate --model DIR --prompt TEXT | --prompt-ids 1,2,3 [--prompt-ids ...]\n"
                 "       loom generate [--address HOST:PORT] --prompt TEXT | --prompt-ids 1,2,3\n\n"
                 "With --model: generates from a HuggingFace model directory in this process, on\n"
                 "the same engine `loom serve` runs, and streams the text (or the token ids, when\n"
                 "the model has no tokenizer); several --prompt-ids run together in one continuous\n"
                 "batch. Without it: sends one prompt to a running `loom serve` and streams the\n"
                 "text as it comes.\n", Run);
}

}  // namespace loom::cli
