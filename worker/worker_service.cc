#include "worker/worker_service.h"

#include "absl/strings/str_cat.h"
#include "common/engine_config_json.h"
#include "common/status.h"
#include "proto/cluster_channel.h"
#include "proto/grpc_status.h"
#include "worker/controller_store.h"
#include "worker/step_proto.h"

namespace loom {
void WorkerService::SetController(std::shared_ptr<loom::v1::Controller::StubInterface> controller,
                                  const std::string& session_id) {
  rank_.SetStore(std::make_shared<ControllerStore>(std::move(controller), session_id,
                                                   rank_.options().collective_timeout));
}

grpc::Status WorkerService::Init(grpc::ServerContext* context, const loom::v1::InitRequest* request,
                                 loom::v1::InitResponse* response) {
  if (grpc::Status s = CheckClusterSecret(*context, cluster_secret_); !s.ok()) return s;
  absl::StatusOr<EngineConfig> config = EngineConfigFromJson(request->engine_config_json());
  if (!config.ok()) return ToGrpcStatus(config.status());
  RankInit init;
  init.communicator = request->communicator();
  init.store_prefix = request->store_prefix();
  init.num_threads = request->num_threads();
  if (request->weight_version() != 0) init.weight_version = request->weight_version();
  absl::StatusOr<int64_t> blocks = rank_.Init(*config, init);
  if (!blocks.ok()) return ToGrpcStatus(blocks.status());
  response->set_num_kv_blocks(*blocks);
  response->set_describe_json(rank_.Describe().dump());
  return grpc::Status::OK;
}

grpc::Status WorkerService::Call(grpc::ServerContext* context, const loom::v1::CallRequest* request,
                                 loom::v1::CallResponse* response) {
  if (grpc::Status s = CheckClusterSecret(*context, cluster_secret_); !s.ok()) return s;
  nlohmann::json args;
  if (!request->args_json().empty()) {
    args = nlohmann::json::parse(request->args_json(), nullptr, /*allow_exceptions=*/false);
    if (args.is_discarded()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          absl::StrCat("method ", request->method(),
                                       ": args are not valid JSON: ", request->args_json()));
    }
  }
  absl::StatusOr<nlohmann::json> result = rank_.Call(request->method(), args);
  if (!result.ok()) return ToGrpcStatus(result.status());
  response->set_result_json(result->dump());
  return grpc::Status::OK;
}

grpc::Status WorkerService::Steps(
    grpc::ServerContext* context,
    grpc::ServerReaderWriter<loom::v1::StepResponse, loom::v1::StepRequest>* stream) {
  if (grpc::Status s = CheckClusterSecret(*context, cluster_secret_); !s.ok()) return s;
  loom::v1::StepRequest request;
  while (stream->Read(&request)) {
    loom::v1::StepResponse response;
    response.set_step_id(request.step_id());
    double compute_seconds = 0;
    absl::StatusOr<StepOutput> output = rank_.Step(StepFromProto(request), &compute_seconds);
    if (output.ok()) {
      response.set_compute_seconds(compute_seconds);
      // Every rank samples the same tokens from the same all-gathered logits; rank 0 speaks
      // for all.
      if (rank_.options().rank == 0) {
        response.mutable_seq_ids()->Add(output->seq_ids.begin(), output->seq_ids.end());
        response.mutable_tokens()->Add(output->tokens.begin(), output->tokens.end());
        for (const TokenLogprobs& t : output->logprobs) {
          loom::v1::StepLogprobs* l = response.add_logprobs();
          l->set_present(t.present);
          l->set_logprob(t.logprob);
          l->mutable_top_ids()->Add(t.top_ids.begin(), t.top_ids.end());
          l->mutable_top_logprobs()->Add(t.top_logprobs.begin(), t.top_logprobs.end());
        }
        if (output->logits.defined()) {
          const float* l = output->logits.data<float>();
          response.mutable_logits()->Add(l, l + output->logits.numel());
        }
      }
    } else {
      response.set_error(std::string(output.status().message()));
      response.set_error_code(static_cast<int>(output.status().code()));
    }
    if (!stream->Write(response)) break;
  }
  return grpc::Status::OK;
}

grpc::Status WorkerService::Health(grpc::ServerContext* context, const loom::v1::HealthRequest*,
                                   loom::v1::HealthResponse* response) {
  if (grpc::Status s = CheckClusterSecret(*context, cluster_secret_); !s.ok()) return s;
  const Rank::Health health = rank_.health();
  response->set_state(health.state);
  response->set_error(health.error);
  return grpc::Status::OK;
}

grpc::Status WorkerService::Shutdown(grpc::ServerContext* context,
                                     const loom::v1::WorkerShutdownRequest*,
                                     loom::v1::WorkerShutdownResponse*) {
  if (grpc::Status s = CheckClusterSecret(*context, cluster_secret_); !s.ok()) return s;
  // The main thread stops the server once this reply is on its way.
  rank_.RequestStop();
  return grpc::Status::OK;
}

}  // namespace loom
