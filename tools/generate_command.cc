// `loom generate`: run prompts (token ids) through a model in one process and print the tokens.
#include <cstdio>
#include <iostream>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status.h"
#include "controller/engine.h"
#include "tools/commands.h"
#include "tools/engine_flags.h"
#include "tools/server_client.h"

namespace loom::cli {
namespace {

std::vector<FlagSpec> GenerateFlagSpecs() {
  std::vector<FlagSpec> specs = EngineFlagSpecs();
  std::vector<FlagSpec> more = {
      {"prompt-ids", false, "comma-separated prompt token ids; repeat for a batch", ""},
      {"prompt", false, "prompt text (on a server; needs the model's tokenizer.json)", ""},
      {"max-tokens", false, "new tokens per prompt", "32"},
      {"temperature", false, "0 = greedy", "0"},
      {"top-k", false, "keep the k most likely tokens (0 = all)", "0"},
      {"top-p", false, "keep the smallest set with this much probability", "1"},
      {"seed", false, "sampling seed (prompt i uses seed + i)", "0"},
      {"stop-ids", false, "comma-separated token ids that end a sequence", ""},
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
  if (flags.Has("prompt")) {
    return absl::InvalidArgumentError(
        "--prompt TEXT runs on a server (`loom serve`); in this process use --prompt-ids");
  }
  LOOM_ASSIGN_OR_RETURN(EngineConfig config, EngineConfigFromFlags(flags));
  std::vector<std::string> prompts = flags.All("prompt-ids");
  if (prompts.empty()) return absl::InvalidArgumentError("--prompt-ids is required");
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
  LOOM_RETURN_IF_ERROR(kernels::ValidateSamplingParams(base.sampling));
  std::vector<GenerationRequest> requests;
  for (size_t i = 0; i < prompts.size(); ++i) {
    GenerationRequest r = base;
    LOOM_ASSIGN_OR_RETURN(std::vector<int64_t> ids, ParseIntList(prompts[i], "--prompt-ids"));
    r.prompt_ids.assign(ids.begin(), ids.end());
    r.sampling.seed = static_cast<uint64_t>(seed) + i;
    requests.push_back(std::move(r));
  }
  LOOM_ASSIGN_OR_RETURN(std::unique_ptr<Engine> engine, Engine::Create(config));
  std::fprintf(stderr, "loom: %s, %lld layers, %lld KV blocks of %lld tokens, %.1f MB weights (%s)\n",
               engine->model_config().architecture.c_str(),
               static_cast<long long>(engine->model_config().num_hidden_layers),
               static_cast<long long>(engine->num_kv_blocks()),
               static_cast<long long>(config.cache.block_size), engine->weight_bytes() / 1e6,
               FloatDTypeName(engine->runner().decoder().weight_dtype()));
  // Stream a single prompt's tokens as they come; print batches whole.
  std::map<int64_t, size_t> index;
  for (size_t i = 0; i < requests.size(); ++i) {
    LOOM_ASSIGN_OR_RETURN(int64_t id, engine->Add(requests[i]));
    index[id] = i;
  }
  const bool stream = requests.size() == 1 && !flags.Bool("json");
  std::vector<GenerationResult> finished;
  while (engine->HasWork()) {
    auto on_token = [&](int64_t, int32_t token) {
      if (stream) std::printf("%d ", token), std::fflush(stdout);
    };
    LOOM_RETURN_IF_ERROR(engine->Step(finished, on_token).status());
  }
  std::vector<GenerationResult> ordered(requests.size());
  for (GenerationResult& r : finished) ordered[index[r.request_id]] = std::move(r);
  for (size_t i = 0; i < ordered.size(); ++i) {
    const GenerationResult& r = ordered[i];
    if (flags.Bool("json")) {
      std::printf("{\"prompt\": %zu, \"output_ids\": [%s], \"finish_reason\": \"%s\"}\n", i,
                  absl::StrJoin(r.output_ids, ", ").c_str(), FinishReasonName(r.finish_reason));
    } else if (stream) {
      std::printf("\n[finish: %s]\n", FinishReasonName(r.finish_reason));
    } else {
      std::printf("prompt %zu: %s [finish: %s]\n", i, absl::StrJoin(r.output_ids, " ").c_str(),
                  FinishReasonName(r.finish_reason));
    }
  }
  return absl::OkStatus();
}

}  // namespace

int GenerateCommand(int argc, char** argv) {
  return RunVerb("generate", argc, argv, GenerateFlagSpecs(), 
                 "usage: loom generate --model DIR --prompt-ids 1,2,3 [--prompt-ids ...] [options]\n"
                 "       loom generate [--address HOST:PORT] --prompt TEXT | --prompt-ids 1,2,3\n\n"
                 "With --model: generates from a HuggingFace model directory in this process and\n"
                 "prints the new token ids; several --prompt-ids run together in one continuous\n"
                 "batch. Without it: sends one prompt to a running `loom serve` and streams the\n"
                 "text (or the token ids, when the model has no tokenizer) as it comes.\n", Run);
}

}  // namespace loom::cli
