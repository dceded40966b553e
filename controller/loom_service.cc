#include "controller/loom_service.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "controller/generate_reactor.h"

namespace loom {

grpc::Status LoomService::Authorize(const grpc::ServerContextBase& context, Access need) const {
  if (!options_.keys.any()) return grpc::Status::OK;
  std::string_view authorization;
  const auto& metadata = context.client_metadata();
  if (auto it = metadata.find("authorization"); it != metadata.end()) {
    authorization = std::string_view(it->second.data(), it->second.size());
  }
  return ToGrpcStatus(CheckAuthorization(options_.keys, authorization, need));
}

grpc::ServerWriteReactor<loom::v1::GenerateResponse>* LoomService::Generate(
    grpc::CallbackServerContext* context, const loom::v1::GenerateRequest* request) {
  if (grpc::Status s = Authorize(*context, Access::kClient); !s.ok()) {
    return new GenerateReactor(s);
  }
  ServingRequest r;
  r.prompt = request->prompt();
  GenerationRequest& g = r.generation;
  g.prompt_ids.assign(request->prompt_ids().begin(), request->prompt_ids().end());
  g.max_tokens = request->max_tokens();  // 0: the model's default
  g.sampling.temperature = request->temperature();
  g.sampling.top_k = request->top_k();
  g.sampling.top_p = request->top_p() > 0 ? request->top_p() : 1.0f;
  g.sampling.presence_penalty = request->presence_penalty();
  g.sampling.frequency_penalty = request->frequency_penalty();
  g.sampling.repetition_penalty =
      request->repetition_penalty() == 0 ? 1.0f : request->repetition_penalty();
  g.sampling.seed = request->seed();
  g.stop_token_ids.assign(request->stop_token_ids().begin(), request->stop_token_ids().end());
  g.stop_strings.assign(request->stop().begin(), request->stop().end());
  if (request->top_logprobs() < 0 || (request->top_logprobs() > 0 && !request->logprobs())) {
    return new GenerateReactor(grpc::Status(
        grpc::StatusCode::INVALID_ARGUMENT,
        absl::StrCat("top_logprobs must be >= 0 and needs logprobs, got ", request->top_logprobs())));
  }
  g.sampling.logprobs = request->logprobs() ? request->top_logprobs() : -1;
  g.ignore_eos = request->ignore_eos();
  absl::StatusOr<std::vector<std::shared_ptr<RequestStream>>> streams =
      engine_->SubmitChoices(std::move(r), request->n() == 0 ? 1 : request->n());
  if (!streams.ok()) return new GenerateReactor(ToGrpcStatus(streams.status()));
  return new GenerateReactor(*std::move(streams));
}

grpc::Status LoomService::CollectiveRpc(grpc::ServerContext* context,
                                        const loom::v1::CollectiveRpcRequest* request,
                                        loom::v1::CollectiveRpcResponse* response) {
  if (grpc::Status s = Authorize(*context, engine_->MethodNeedsAdmin(request->method())
                                               ? Access::kAdmin
                                               : Access::kClient);
      !s.ok()) {
    return grpc::Status(s.error_code(),
                        absl::StrCat("method ", request->method(), ": ", s.error_message()));
  }
  const std::chrono::milliseconds timeout = request->timeout_ms() > 0
                                                ? std::chrono::milliseconds(request->timeout_ms())
                                                : options_.default_rpc_timeout;
  std::vector<int> ranks(request->ranks().begin(), request->ranks().end());
  for (int r : ranks) {
    if (r < 0 || r >= engine_->world_size()) {
      return grpc::Status(
          grpc::StatusCode::INVALID_ARGUMENT,
          absl::StrCat("rank ", r, " outside [0, ", engine_->world_size(), ")"));
    }
  }
  absl::StatusOr<std::vector<RankResult>> results =
      engine_->CollectiveCall(request->method(), request->args_json(), timeout, ranks);
  if (!results.ok()) return ToGrpcStatus(results.status());
  for (const RankResult& r : *results) {
    loom::v1::RankResult* out = response->add_results();
    out->set_rank(r.rank);
    out->set_result_json(r.result.dump());
  }
  return grpc::Status::OK;
}

grpc::Status LoomService::GetStatus(grpc::ServerContext* context,
                                    const loom::v1::GetStatusRequest*,
                                    loom::v1::GetStatusResponse* response) {
  if (grpc::Status s = Authorize(*context, Access::kClient); !s.ok()) return s;
  const EngineStatus status = engine_->Status();
  response->set_model(status.model);
  response->set_tensor_parallel_size(status.world_size);
  response->set_num_kv_blocks(status.num_kv_blocks);
  response->set_running_requests(status.running_requests);
  response->set_waiting_requests(status.waiting_requests);
  for (const RankState& rank : status.ranks) {
    loom::v1::RankStatus* out = response->add_ranks();
    out->set_rank(rank.rank);
    out->set_state(rank.state);
    out->set_pid(rank.pid);
    out->set_device(rank.device);
    out->set_address(rank.address);
    out->set_error(rank.error);
    const nlohmann::json& w = rank.weights;
    // A live rank that has not built its model yet says nothing of its weights.
    if (!w.is_object() && rank.state == "ready") out->set_weight_state("starting");
    if (w.is_object()) {
      const nlohmann::json serving = w.value("serving", nlohmann::json::object());
      const nlohmann::json staged = w.value("staged", nlohmann::json());
      const nlohmann::json progress = w.value("progress", nlohmann::json::object());
      out->set_weight_state(w.value("state", ""));
      out->set_load_format(serving.value("load_format", ""));
      out->set_weight_source(serving.value("source", ""));
      out->set_serving_version(serving.value("version", uint64_t{0}));
      out->set_dummy(serving.value("dummy", false));
      if (staged.is_object()) out->set_staged_version(staged.value("version", uint64_t{0}));
      const nlohmann::json previous = w.value("previous", nlohmann::json());
      if (previous.is_object()) {
        out->set_previous_version(previous.value("version", uint64_t{0}));
        out->set_previous_bytes(previous.value("bytes", int64_t{0}));
      }
      out->set_load_bytes_done(progress.value("bytes_done", int64_t{0}));
      out->set_load_bytes_total(progress.value("bytes_total", int64_t{0}));
    }
    if (rank.memory.is_object() && rank.memory.contains("weight_bytes")) {
      const nlohmann::json& m = rank.memory;
      auto gb = [&m](const char* key) {
        return absl::StrFormat("%.2f GB", m.value(key, int64_t{0}) / 1e9);
      };
      out->set_memory(absl::StrCat(m.value("device_name", "?"), ": weights ", gb("weight_bytes"),
                                   ", activations ", gb("workspace_bytes"), ", KV ",
                                   gb("kv_cache_bytes"), " (", m.value("num_kv_blocks", int64_t{0}),
                                   " blocks); ", m.value("memory_plan", "")));
    }
  }
  response->set_serving_weight_version(status.serving_weight_version);
  response->set_staged_weight_version(status.staged_weight_version);
  response->set_previous_weight_version(status.previous_weight_version);
  response->set_sleep_level(status.sleep_level);
  response->set_restarts(status.restarts);
  response->set_last_failure(status.last_failure);
  response->set_healing(status.healing);
  response->set_controller_address(status.controller_address);
  response->set_session_id(status.session_id);
  response->set_steps(status.steps);
  response->set_num_free_kv_blocks(status.num_free_kv_blocks);
  loom::v1::FinishCounts* finished = response->mutable_finished();
  finished->set_stop(status.finished.stop);
  finished->set_length(status.finished.length);
  finished->set_abort(status.finished.abort);
  finished->set_error(status.finished.error);
  response->set_max_model_len(status.max_model_len);
  response->mutable_eos_token_ids()->Add(status.eos_token_ids.begin(), status.eos_token_ids.end());
  response->set_tokenizer(status.tokenizer);
  response->set_default_max_tokens(status.default_max_tokens);
  return grpc::Status::OK;
}

grpc::Status LoomService::Shutdown(grpc::ServerContext* context,
                                   const loom::v1::ShutdownRequest*,
                                   loom::v1::ShutdownResponse*) {
  if (grpc::Status s = Authorize(*context, Access::kAdmin); !s.ok()) return s;
  if (options_.on_shutdown) options_.on_shutdown();
  return grpc::Status::OK;
}

absl::StatusOr<std::unique_ptr<grpc::Server>> StartLoomServer(grpc::Service* service,
                                                              const LoomServerOptions& options,
                                                              std::string* bound_address) {
  if (options.tls_cert_pem.empty() != options.tls_key_pem.empty()) {
    return absl::InvalidArgumentError("TLS needs both a certificate and its private key");
  }
  if (options.max_message_bytes <= 0) {
    return absl::InvalidArgumentError("the message size limit must be positive");
  }
  std::shared_ptr<grpc::ServerCredentials> credentials = grpc::InsecureServerCredentials();
  if (!options.tls_cert_pem.empty()) {
    grpc::SslServerCredentialsOptions ssl;
    ssl.pem_key_cert_pairs.push_back({options.tls_key_pem, options.tls_cert_pem});
    credentials = grpc::SslServerCredentials(ssl);
  }
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(options.address, credentials, &port);
  builder.SetMaxReceiveMessageSize(options.max_message_bytes);
  builder.SetMaxSendMessageSize(options.max_message_bytes);
  builder.RegisterService(service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0) {
    return absl::UnavailableError(absl::StrCat(
        "cannot listen on ", options.address,
        options.tls_cert_pem.empty() ? "" : " (or the TLS certificate and key do not match)"));
  }
  const size_t colon = options.address.rfind(':');
  *bound_address = absl::StrCat(options.address.substr(0, colon), ":", port);
  return server;
}

}  // namespace loom
