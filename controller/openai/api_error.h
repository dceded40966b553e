// Errors of the OpenAI-compatible HTTP API, in OpenAI's shape:
//   {"error": {"message": ..., "type": ..., "param": ..., "code": ...}}
// and the HTTP status each Status code maps to (docs/http.md has the table).
#ifndef LOOM_CONTROLLER_OPENAI_API_ERROR_H_
#define LOOM_CONTROLLER_OPENAI_API_ERROR_H_

#include <nlohmann/json.hpp>
#include <string>

#include "absl/status/status.h"

namespace loom::openai {

// A Status for a bad request field: InvalidArgument with `param` attached (the JSON name of the
// field, shown as "param" in the error body).
absl::Status BadParam(const std::string& param, const std::string& message);

// InvalidArgument, OutOfRange -> 400; Unauthenticated -> 401; PermissionDenied -> 403;
// NotFound -> 404; ResourceExhausted -> 429;
// Unavailable, FailedPrecondition, Aborted -> 503; DeadlineExceeded -> 504; anything else 500.
int HttpStatusOf(const absl::Status& status);

// The error body for `status`.
nlohmann::json ErrorBody(const absl::Status& status);
// The error body for an HTTP-level failure (404 unknown path, 413 body too large, ...).
nlohmann::json ErrorBody(int http_status, const std::string& message);

}  // namespace loom::openai

#endif  // LOOM_CONTROLLER_OPENAI_API_ERROR_H_
