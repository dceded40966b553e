// The client side of the `loom` verbs that talk to a running `loom serve`: connecting, and
// streaming a generation to the terminal.
#ifndef LOOM_TOOLS_SERVER_CLIENT_H_
#define LOOM_TOOLS_SERVER_CLIENT_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/flags.h"
#include "loom/v1/loom.grpc.pb.h"

namespace loom::cli {

// The flags every client verb has (--address, --timeout, --api-key-file, --tls-ca).
std::vector<FlagSpec> ClientFlagSpecs();

// --address, or the default.
std::string Address(const Flags& flags);
// A gRPC status from the server as an absl::Status (an empty UNAVAILABLE names the address).
absl::Status FromGrpc(const grpc::Status& status, const std::string& address);

// A stub for the server named by --address; Unavailable, naming the address, when nothing
// answers there within --timeout. Every call carries the key of --api-key-file (else
// $LOOM_API_KEY) as "authorization: Bearer KEY"; with --tls-ca the channel is TLS, the server's
// certificate checked against that CA bundle.
absl::StatusOr<std::unique_ptr<loom::v1::Loom::Stub>> ConnectToServer(const Flags& flags);

// `loom generate` without --model: one prompt (--prompt TEXT or --prompt-ids) on the server,
// text streamed to stdout as it comes (token ids when the server has no tokenizer).
absl::Status GenerateOnServer(const Flags& flags);

}  // namespace loom::cli

#endif  // LOOM_TOOLS_SERVER_CLIENT_H_
