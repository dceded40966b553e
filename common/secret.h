// Secrets Loom is handed (API keys, the cluster secret): read from files, compared in constant
// time. A secret never goes into an error message, a log line or a status.
#ifndef LOOM_COMMON_SECRET_H_
#define LOOM_COMMON_SECRET_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace loom {

// The contents of `path` with trailing whitespace (a final newline) removed. InvalidArgument
// naming `what` (e.g. "--api-key-file") and the path when the file cannot be read, is empty, or
// holds a line break or a control character inside the secret (a header or metadata value
// could not carry it).
absl::StatusOr<std::string> ReadSecretFile(const std::string& path, const std::string& what);

// InvalidArgument naming `what` when `secret` is empty or holds a character a header or gRPC
// metadata value cannot carry (outside printable ASCII).
absl::Status CheckSecret(std::string_view secret, const std::string& what);

// Whether `given` equals `expected`, in time that depends only on the length of `given` (not on
// where the first difference is, nor on the expected secret's length).
bool SecretEquals(std::string_view given, std::string_view expected);

}  // namespace loom

#endif  // LOOM_COMMON_SECRET_H_
