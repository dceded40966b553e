#include "controller/openai/api_error.h"

#include <optional>

#include "absl/strings/cord.h"

namespace loom::openai {
namespace {

constexpr char kParamUrl[] = "loom.dev/openai/param";

const char* TypeOf(int http_status) {
  switch (http_status) {
    case 400:
    case 401:
    case 403:
    case 413:
      return "invalid_request_error";
    case 404:
      return "not_found_error";
    case 429:
      return "rate_limit_error";
    case 503:
      return "service_unavailable_error";
    default:
      return "internal_error";
  }
}

}  // namespace

absl::Status BadParam(const std::string& param, const std::string& message) {
  absl::Status status = absl::InvalidArgumentError(message);
  status.SetPayload(kParamUrl, absl::Cord(param));
  return status;
}

int HttpStatusOf(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOk:
      return 200;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
      return 400;
    case absl::StatusCode::kUnauthenticated:
      return 401;
    case absl::StatusCode::kPermissionDenied:
      return 403;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kResourceExhausted:
      return 429;
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kAborted:
      return 503;
    case absl::StatusCode::kDeadlineExceeded:
      return 504;
    default:
      return 500;
  }
}

nlohmann::json ErrorBody(const absl::Status& status) {
  const int http = HttpStatusOf(status);
  nlohmann::json body = ErrorBody(http, std::string(status.message()));
  if (auto param = status.GetPayload(kParamUrl)) {
    body["error"]["param"] = std::string(*param);
  }
  return body;
}

nlohmann::json ErrorBody(int http_status, const std::string& message) {
  return {{"error",
           {{"message", message},
            {"type", TypeOf(http_status)},
            {"param", nullptr},
            {"code", http_status}}}};
}

}  // namespace loom::openai
