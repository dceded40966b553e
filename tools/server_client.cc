#include "tools/server_client.h"

#include <grpcpp/grpcpp.h>

#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/secret.h"
#include "common/status.h"
#include "common/sampling_params.h"
#include "proto/cluster_channel.h"
#include "proto/grpc_status.h"
#include "tools/commands.h"

namespace loom::cli {
absl::Status FromGrpc(const grpc::Status& status, const std::string& address) {
  if (status.ok()) return absl::OkStatus();
  std::string message = status.error_message();
  if (status.error_code() == grpc::StatusCode::UNAVAILABLE && message.empty()) {
    message = absl::StrCat("the server at ", address, " went away");
  }
  return absl::Status(FromGrpcStatus(status).code(), message);
}

std::string Address(const Flags& flags) {
  return flags.String("address", absl::StrCat("127.0.0.1:", kDefaultPort));
}

std::vector<FlagSpec> ClientFlagSpecs() {
  return {
      {"address", false, "the server (HOST:PORT)", absl::StrCat("127.0.0.1:", kDefaultPort)},
      {"timeout", false, "seconds to wait for the server to answer the connection", "5"},
      {"api-key-file", false, "file holding the server's API key", "$LOOM_API_KEY"},
      {"tls-ca", false, "the server speaks TLS: PEM file of the CA that signed its certificate",
       ""},
  };
}

absl::StatusOr<std::unique_ptr<loom::v1::Loom::Stub>> ConnectToServer(const Flags& flags) {
  const std::string address = Address(flags);
  LOOM_ASSIGN_OR_RETURN(double timeout_s, flags.Double("timeout", 5));
  std::string key;
  if (const std::string file = flags.String("api-key-file"); !file.empty()) {
    LOOM_ASSIGN_OR_RETURN(key, ReadSecretFile(file, "--api-key-file"));
  } else if (const char* env = std::getenv("LOOM_API_KEY"); env != nullptr && *env != 0) {
    LOOM_RETURN_IF_ERROR(CheckSecret(env, "LOOM_API_KEY"));
    key = env;
  }
  std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
  if (const std::string ca = flags.String("tls-ca"); !ca.empty()) {
    grpc::SslCredentialsOptions ssl;
    std::ifstream in(ca);
    std::stringstream pem;
    pem << in.rdbuf();
    if (!in || pem.str().empty()) {
      return absl::InvalidArgumentError(absl::StrCat("--tls-ca: cannot read ", ca));
    }
    ssl.pem_root_certs = pem.str();
    credentials = grpc::SslCredentials(ssl);
  }
  std::vector<std::pair<std::string, std::string>> metadata;
  if (!key.empty()) metadata.push_back({"authorization", absl::StrCat("Bearer ", key)});
  auto channel = ChannelWithMetadata(address, credentials, grpc::ChannelArguments(),
                                     std::move(metadata));
  const auto deadline = std::chrono::system_clock::now() +
                        std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000));
  // Fail at the first refused connection rather than retrying until the deadline.
  grpc_connectivity_state state = channel->GetState(/*try_to_connect=*/true);
  while (state != GRPC_CHANNEL_READY) {
    if (state == GRPC_CHANNEL_TRANSIENT_FAILURE || state == GRPC_CHANNEL_SHUTDOWN ||
        !channel->WaitForStateChange(state, deadline)) {
      return absl::UnavailableError(
          absl::StrCat("cannot reach a Loom server at ", address,
                       " (start one with `loom serve --model DIR`, or pass --model DIR to "
                       "generate in this process)"));
    }
    state = channel->GetState(true);
  }
  return loom::v1::Loom::NewStub(channel);
}

absl::Status GenerateOnServer(const Flags& flags) {
  loom::v1::GenerateRequest request;
  const std::vector<std::string> prompt_ids = flags.All("prompt-ids");
  if (prompt_ids.size() > 1) {
    return absl::InvalidArgumentError("a server generates one --prompt-ids per call");
  }
  if (prompt_ids.empty() && !flags.Has("prompt")) {
    return absl::InvalidArgumentError("--prompt TEXT or --prompt-ids is required");
  }
  if (!prompt_ids.empty()) {
    LOOM_ASSIGN_OR_RETURN(std::vector<int64_t> ids, ParseIntList(prompt_ids[0], "--prompt-ids"));
    for (int64_t id : ids) request.add_prompt_ids(static_cast<int32_t>(id));
  } else {
    request.set_prompt(flags.String("prompt"));
  }
  LOOM_ASSIGN_OR_RETURN(int64_t max_tokens, flags.Int("max-tokens", 32));
  LOOM_ASSIGN_OR_RETURN(double temperature, flags.Double("temperature", 0));
  LOOM_ASSIGN_OR_RETURN(double top_p, flags.Double("top-p", 1));
  LOOM_ASSIGN_OR_RETURN(int64_t top_k, flags.Int("top-k", 0));
  LOOM_ASSIGN_OR_RETURN(int64_t seed, flags.Int("seed", 0));
  SamplingParams sampling;
  sampling.temperature = static_cast<float>(temperature);
  sampling.top_p = static_cast<float>(top_p);
  LOOM_RETURN_IF_ERROR(ValidateSamplingParams(sampling));
  if (max_tokens <= 0) return absl::InvalidArgumentError("--max-tokens must be positive");
  request.set_max_tokens(static_cast<int32_t>(max_tokens));
  request.set_temperature(sampling.temperature);
  request.set_top_p(sampling.top_p);
  request.set_top_k(static_cast<int32_t>(top_k));
  request.set_seed(static_cast<uint64_t>(seed));
  request.set_ignore_eos(flags.Bool("ignore-eos"));
  if (flags.Has("stop-ids")) {
    LOOM_ASSIGN_OR_RETURN(std::vector<int64_t> stops,
                          ParseIntList(flags.String("stop-ids"), "--stop-ids"));
    for (int64_t id : stops) request.add_stop_token_ids(static_cast<int32_t>(id));
  }
  for (const std::string& stop : flags.All("stop")) request.add_stop(stop);

  LOOM_ASSIGN_OR_RETURN(std::unique_ptr<loom::v1::Loom::Stub> stub, ConnectToServer(flags));
  grpc::ClientContext context;
  auto reader = stub->Generate(&context, request);
  const bool json = flags.Bool("json");
  std::vector<int32_t> ids;
  std::vector<uint64_t> versions;  // the weight versions that made the tokens, in order
  std::string text, finish;
  loom::v1::Usage usage;
  loom::v1::GenerateResponse response;
  while (reader->Read(&response)) {
    ids.insert(ids.end(), response.token_ids().begin(), response.token_ids().end());
    text += response.text();
    const uint64_t version = response.weight_version();
    if (version != 0 && (versions.empty() || versions.back() != version)) {
      // A switch mid-answer is marked where it happened (on stderr: stdout stays the text).
      if (!json && !versions.empty()) {
        const bool space = !response.text().empty() && std::isspace(static_cast<unsigned char>(
                                                           response.text().front()));
        std::fflush(stdout);
        std::fprintf(stderr, " [weight version %llu from here]%s",
                     static_cast<unsigned long long>(version), space ? "" : " ");
      }
      versions.push_back(version);
    }
    if (!json) {
      if (!response.text().empty()) {
        std::fputs(response.text().c_str(), stdout);
      } else {
        for (int32_t id : response.token_ids()) std::printf("%d ", id);
      }
      std::fflush(stdout);
    }
    if (!response.finish_reason().empty()) {
      finish = response.finish_reason();
      usage = response.usage();
    }
  }
  LOOM_RETURN_IF_ERROR(FromGrpc(reader->Finish(), Address(flags)));
  if (json) {
    nlohmann::json out = {{"output_ids", ids},
                          {"text", text},
                          {"finish_reason", finish},
                          {"prompt_tokens", usage.prompt_tokens()},
                          {"completion_tokens", usage.completion_tokens()},
                          {"weight_versions", versions}};
    std::printf("%s\n", out.dump().c_str());
  } else {
    std::string weights;
    if (!versions.empty()) {
      weights = absl::StrCat(", weight version", versions.size() > 1 ? "s " : " ",
                             absl::StrJoin(versions, " then "));
    }
    std::printf("\n[finish: %s, %d prompt + %d completion tokens%s]\n", finish.c_str(),
                usage.prompt_tokens(), usage.completion_tokens(), weights.c_str());
  }
  return absl::OkStatus();
}

}  // namespace loom::cli
