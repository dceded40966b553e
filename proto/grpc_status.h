// The one mapping between absl::Status and grpc::Status, used on both sides of every Loom gRPC
// service: the codes are the same numbers (both follow google.rpc.Code), the message is kept.
#ifndef LOOM_PROTO_GRPC_STATUS_H_
#define LOOM_PROTO_GRPC_STATUS_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace loom {

grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace loom

#endif  // LOOM_PROTO_GRPC_STATUS_H_
