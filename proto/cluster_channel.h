// The controller <-> worker channels (both directions: the Worker and Controller services):
// explicit message size limits, and the per-cluster secret every call carries and every
// handler checks, so a worker answers only its own controller and the controller only its own
// workers (docs/security.md). Local workers also listen on Unix sockets in a 0700 directory;
// the secret is what guards TCP workers that an outside launcher starts.
#ifndef LOOM_PROTO_CLUSTER_CHANNEL_H_
#define LOOM_PROTO_CLUSTER_CHANNEL_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace loom {

// The largest message on a cluster channel, each way. A step's response with logits
// ([sampled rows, vocab] floats) is the largest legitimate one.
inline constexpr int kClusterMessageBytes = 256 << 20;
// Where a worker or `loom serve` finds the secret when no --cluster-secret-file is given.
inline constexpr char kClusterSecretEnv[] = "LOOM_CLUSTER_SECRET";

// The secret: the contents of `file` when it is not empty, else $LOOM_CLUSTER_SECRET, else ""
// (no secret). InvalidArgument when the file cannot be read or either is empty or malformed.
absl::StatusOr<std::string> ClusterSecretFrom(const std::string& file);

// A channel on which every call carries `metadata` (name, value pairs), e.g. an API key's
// "authorization" for the client API.
std::shared_ptr<grpc::Channel> ChannelWithMetadata(
    const std::string& address, const std::shared_ptr<grpc::ChannelCredentials>& credentials,
    const grpc::ChannelArguments& args, std::vector<std::pair<std::string, std::string>> metadata);

// A channel to `address` with the cluster's message limits; every call on it carries `secret`
// (none when empty).
std::shared_ptr<grpc::Channel> ClusterChannel(const std::string& address,
                                              const std::string& secret);

// Sets the cluster's message limits on a server of the Worker or Controller service.
void LimitClusterMessages(grpc::ServerBuilder& builder);

// OK when `secret` is empty or the call carries it (compared in constant time); otherwise
// UNAUTHENTICATED, saying the caller is not of this cluster (the secret is never in it).
grpc::Status CheckClusterSecret(const grpc::ServerContextBase& context, const std::string& secret);

}  // namespace loom

#endif  // LOOM_PROTO_CLUSTER_CHANNEL_H_
