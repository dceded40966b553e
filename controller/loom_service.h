// The Loom client API (proto loom.v1.Loom) over a ServingEngine: Generate streams, collective
// calls, status and shutdown. absl::Status values become gRPC statuses here, their messages
// (which name the rank and the cause) kept whole.
//
// Generate uses gRPC's callback API (GenerateReactor), so a client's cancel, disconnect or
// passed deadline reaches the engine as a notification; the other methods are synchronous.
//
// Thread-safe: gRPC calls the handlers from its own threads.
#ifndef LOOM_CONTROLLER_LOOM_SERVICE_H_
#define LOOM_CONTROLLER_LOOM_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "controller/serving_engine.h"
#include "loom/v1/loom.grpc.pb.h"
#include "proto/grpc_status.h"

namespace loom {

struct LoomServiceOptions {
  // The deadline of a CollectiveRpc that sets none.
  std::chrono::milliseconds default_rpc_timeout = std::chrono::seconds(30);
  // Called on each Shutdown call. It should only tell the owner: the owner stops the engine and
  // the server from its own thread (a handler cannot wait for the server it runs in).
  std::function<void()> on_shutdown;
};

class LoomService final
    : public loom::v1::Loom::WithCallbackMethod_Generate<loom::v1::Loom::Service> {
 public:
  // `engine` must outlive the service.
  LoomService(ServingEngine* engine, LoomServiceOptions options)
      : engine_(engine), options_(std::move(options)) {}

  grpc::ServerWriteReactor<loom::v1::GenerateResponse>* Generate(
      grpc::CallbackServerContext* context, const loom::v1::GenerateRequest* request) override;
  grpc::Status CollectiveRpc(grpc::ServerContext* context,
                             const loom::v1::CollectiveRpcRequest* request,
                             loom::v1::CollectiveRpcResponse* response) override;
  grpc::Status GetStatus(grpc::ServerContext* context, const loom::v1::GetStatusRequest* request,
                         loom::v1::GetStatusResponse* response) override;
  grpc::Status Shutdown(grpc::ServerContext* context, const loom::v1::ShutdownRequest* request,
                        loom::v1::ShutdownResponse* response) override;

 private:
  ServingEngine* engine_;
  const LoomServiceOptions options_;
};

// A gRPC server for `service` on `address` ("127.0.0.1:0" picks a free port) with server
// reflection on. `bound_address` gets the address with the port actually bound.
absl::StatusOr<std::unique_ptr<grpc::Server>> StartLoomServer(grpc::Service* service,
                                                              const std::string& address,
                                                              std::string* bound_address);

}  // namespace loom

#endif  // LOOM_CONTROLLER_LOOM_SERVICE_H_
