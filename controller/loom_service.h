// The Loom client API (proto loom.v1.Loom) over a ServingEngine: Generate streams, collective
// calls, status and shutdown. absl::Status values become gRPC statuses here, their messages
// (which name the rank and the cause) kept whole.
//
// Generate uses gRPC's callback API (GenerateReactor), so a client's cancel, disconnect or
// passed deadline reaches the engine as a notification; the other methods are synchronous.
//
// With keys (LoomServiceOptions::keys, controller/api_keys.h) every call needs
// `authorization: Bearer KEY` metadata: Generate and GetStatus a client key; Shutdown and the
// collective methods whose registration says so (ServingEngine::MethodNeedsAdmin) the admin key.
// A refused call (UNAUTHENTICATED, PERMISSION_DENIED) reaches no rank and changes nothing.
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
#include "controller/api_keys.h"
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
  ApiKeys keys;  // none: every call is served
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
  // OK when the call's authorization metadata grants `need`.
  grpc::Status Authorize(const grpc::ServerContextBase& context, Access need) const;

  ServingEngine* engine_;
  const LoomServiceOptions options_;
};

struct LoomServerOptions {
  std::string address = "127.0.0.1:0";  // port 0 picks a free one
  // The largest message the server takes or sends; a larger one ends its call with
  // RESOURCE_EXHAUSTED.
  int max_message_bytes = 16 << 20;
  // TLS: PEM contents of the server's certificate chain and private key. Both or neither;
  // neither serves plaintext.
  std::string tls_cert_pem;
  std::string tls_key_pem;
};

// A gRPC server for `service` with server reflection on. `bound_address` gets the address with
// the port actually bound.
absl::StatusOr<std::unique_ptr<grpc::Server>> StartLoomServer(grpc::Service* service,
                                                              const LoomServerOptions& options,
                                                              std::string* bound_address);

}  // namespace loom

#endif  // LOOM_CONTROLLER_LOOM_SERVICE_H_
