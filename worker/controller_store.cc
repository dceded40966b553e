#include "worker/controller_store.h"

#include <grpcpp/grpcpp.h>

#include "gloo/common/error.h"

namespace loom {
namespace {

// The RPC may take as long as the wait it asks for, plus a margin for the transport.
constexpr std::chrono::milliseconds kRpcMargin = std::chrono::seconds(5);

[[noreturn]] void Fail(const std::string& what, const grpc::Status& status) {
  throw gloo::IoException(std::string("controller store: ") + what + ": " +
                          std::to_string(static_cast<int>(status.error_code())) + " " +
                          status.error_message());
}

}  // namespace

ControllerStore::ControllerStore(std::shared_ptr<loom::v1::Controller::StubInterface> stub,
                                 std::string session_id, std::chrono::milliseconds default_timeout)
    : stub_(std::move(stub)),
      session_id_(std::move(session_id)),
      default_timeout_(default_timeout) {}

void ControllerStore::set(const std::string& key, const std::vector<char>& data) {
  loom::v1::StoreSetRequest request;
  request.set_key(Scoped(key));
  request.set_value(std::string(data.begin(), data.end()));
  loom::v1::StoreSetResponse response;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + kRpcMargin);
  grpc::Status status = stub_->StoreSet(&context, request, &response);
  if (!status.ok()) Fail("set " + key, status);
}

std::vector<char> ControllerStore::get(const std::string& key) {
  std::vector<std::string> values = Get({key}, default_timeout_);
  return std::vector<char>(values[0].begin(), values[0].end());
}

void ControllerStore::wait(const std::vector<std::string>& keys) { wait(keys, default_timeout_); }

void ControllerStore::wait(const std::vector<std::string>& keys,
                           const std::chrono::milliseconds& timeout) {
  Get(keys, timeout);
}

std::vector<std::string> ControllerStore::Get(const std::vector<std::string>& keys,
                                              std::chrono::milliseconds timeout) {
  loom::v1::StoreGetRequest request;
  for (const std::string& key : keys) request.add_keys(Scoped(key));
  request.set_timeout_ms(timeout.count());
  loom::v1::StoreGetResponse response;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + timeout + kRpcMargin);
  grpc::Status status = stub_->StoreGet(&context, request, &response);
  const std::string what = keys.size() == 1 ? "get " + keys[0] : "wait for keys";
  if (!status.ok()) Fail(what, status);
  if (response.values_size() != static_cast<int>(keys.size())) {
    Fail(what, grpc::Status(grpc::StatusCode::INTERNAL, "wrong number of values"));
  }
  return {response.values().begin(), response.values().end()};
}

}  // namespace loom
