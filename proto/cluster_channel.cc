#include "proto/cluster_channel.h"

#include <grpcpp/support/client_interceptor.h>

#include <cstdlib>
#include <string_view>
#include <vector>

#include "common/secret.h"

namespace loom {
namespace {

constexpr char kSecretMetadata[] = "x-loom-cluster-secret";

using Metadata = std::vector<std::pair<std::string, std::string>>;

// Adds the metadata to the initial metadata of every call on the channel.
class MetadataInterceptor final : public grpc::experimental::Interceptor {
 public:
  explicit MetadataInterceptor(const Metadata* metadata) : metadata_(metadata) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_INITIAL_METADATA)) {
      for (const auto& [name, value] : *metadata_) {
        methods->GetSendInitialMetadata()->insert({name, value});
      }
    }
    methods->Proceed();
  }

 private:
  const Metadata* metadata_;
};

class MetadataInterceptorFactory final
    : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  explicit MetadataInterceptorFactory(Metadata metadata) : metadata_(std::move(metadata)) {}

  grpc::experimental::Interceptor* CreateClientInterceptor(
      grpc::experimental::ClientRpcInfo*) override {
    return new MetadataInterceptor(&metadata_);
  }

 private:
  const Metadata metadata_;  // the channel owns the factory, which outlives its interceptors
};

}  // namespace

absl::StatusOr<std::string> ClusterSecretFrom(const std::string& file) {
  if (!file.empty()) return ReadSecretFile(file, "--cluster-secret-file");
  const char* env = std::getenv(kClusterSecretEnv);
  if (env == nullptr) return std::string();
  absl::Status valid = CheckSecret(env, kClusterSecretEnv);
  if (!valid.ok()) return valid;
  return std::string(env);
}

std::shared_ptr<grpc::Channel> ChannelWithMetadata(
    const std::string& address, const std::shared_ptr<grpc::ChannelCredentials>& credentials,
    const grpc::ChannelArguments& args, Metadata metadata) {
  std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>> interceptors;
  if (!metadata.empty()) {
    interceptors.push_back(std::make_unique<MetadataInterceptorFactory>(std::move(metadata)));
  }
  return grpc::experimental::CreateCustomChannelWithInterceptors(address, credentials, args,
                                                                 std::move(interceptors));
}

std::shared_ptr<grpc::Channel> ClusterChannel(const std::string& address,
                                              const std::string& secret) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kClusterMessageBytes);
  args.SetMaxSendMessageSize(kClusterMessageBytes);
  Metadata metadata;
  if (!secret.empty()) metadata.push_back({kSecretMetadata, secret});
  return ChannelWithMetadata(address, grpc::InsecureChannelCredentials(), args,
                             std::move(metadata));
}

void LimitClusterMessages(grpc::ServerBuilder& builder) {
  builder.SetMaxReceiveMessageSize(kClusterMessageBytes);
  builder.SetMaxSendMessageSize(kClusterMessageBytes);
}

grpc::Status CheckClusterSecret(const grpc::ServerContextBase& context, const std::string& secret) {
  if (secret.empty()) return grpc::Status::OK;
  const auto& metadata = context.client_metadata();
  const auto it = metadata.find(kSecretMetadata);
  const std::string_view given = it == metadata.end()
                                     ? std::string_view()
                                     : std::string_view(it->second.data(), it->second.size());
  if (SecretEquals(given, secret)) return grpc::Status::OK;
  return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                      "the caller is not of this cluster: a missing or wrong cluster secret "
                      "(--cluster-secret-file or LOOM_CLUSTER_SECRET)");
}

}  // namespace loom
