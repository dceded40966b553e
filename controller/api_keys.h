// The keys of the client API (gRPC and HTTP alike): `Authorization: Bearer KEY`, checked per
// call against what the call needs (docs/security.md).
//
//   no keys            every call is served (the default: the API listens on loopback);
//   client key only    every call needs it, the admin methods too (one key for everything);
//   admin key only     client calls are open, admin methods need the admin key;
//   both               client calls take either key, admin methods only the admin key.
//
// Admin calls are those that change the server's state or touch its file system: the collective
// methods whose registration says so (worker/method_registry.h) and Shutdown.
#ifndef LOOM_CONTROLLER_API_KEYS_H_
#define LOOM_CONTROLLER_API_KEYS_H_

#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace loom {

enum class Access { kClient, kAdmin };

struct ApiKeys {
  std::string client;  // empty: none
  std::string admin;   // empty: none

  bool any() const { return !client.empty() || !admin.empty(); }
};

// OK when `authorization` (the header or metadata value, "" when absent) grants `need`.
// Unauthenticated when a key is needed and none or a wrong one is given; PermissionDenied when
// the client key asks for an admin call. Keys are compared in constant time and never appear
// in the message.
absl::Status CheckAuthorization(const ApiKeys& keys, std::string_view authorization, Access need);

}  // namespace loom

#endif  // LOOM_CONTROLLER_API_KEYS_H_
