#include "controller/api_keys.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "common/secret.h"

namespace loom {
namespace {

// The token of "Bearer TOKEN" (the scheme in any case), or "" for anything else.
std::string_view BearerToken(std::string_view authorization) {
  constexpr std::string_view kScheme = "bearer ";
  if (authorization.size() <= kScheme.size() ||
      !absl::EqualsIgnoreCase(absl::string_view(authorization.data(), kScheme.size()),
                              absl::string_view(kScheme.data(), kScheme.size()))) {
    return {};
  }
  const absl::string_view token = absl::StripAsciiWhitespace(absl::string_view(
      authorization.data() + kScheme.size(), authorization.size() - kScheme.size()));
  return std::string_view(token.data(), token.size());
}

}  // namespace

absl::Status CheckAuthorization(const ApiKeys& keys, std::string_view authorization, Access need) {
  // What this call may be served with: the admin key always, the client key for client calls
  // and, when there is no admin key, for admin calls too.
  const bool client_grants = need == Access::kClient || keys.admin.empty();
  const bool open = need == Access::kClient ? keys.client.empty() : !keys.any();
  if (open) return absl::OkStatus();
  const std::string_view token = BearerToken(authorization);
  // Both comparisons always run: the time does not say which key matched.
  const bool is_admin = SecretEquals(token, keys.admin);
  const bool is_client = SecretEquals(token, keys.client);
  if (is_admin || (is_client && client_grants)) return absl::OkStatus();
  if (is_client) {
    return absl::PermissionDeniedError(
        "this call changes the server's state or touches its files: it needs the admin key "
        "(--admin-key), not the client key");
  }
  return absl::UnauthenticatedError(
      token.empty() ? "this server needs an API key: send \"authorization: Bearer KEY\""
                    : "the API key is not valid for this server");
}

}  // namespace loom
