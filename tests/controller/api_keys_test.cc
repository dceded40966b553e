#include "controller/api_keys.h"

#include <gtest/gtest.h>

namespace loom {
namespace {

absl::StatusCode Code(const ApiKeys& keys, const std::string& authorization, Access need) {
  return CheckAuthorization(keys, authorization, need).code();
}

constexpr absl::StatusCode kOk = absl::StatusCode::kOk;
constexpr absl::StatusCode kUnauthenticated = absl::StatusCode::kUnauthenticated;
constexpr absl::StatusCode kDenied = absl::StatusCode::kPermissionDenied;

TEST(ApiKeysTest, WithoutKeysEverythingIsServed) {
  EXPECT_EQ(Code({}, "", Access::kClient), kOk);
  EXPECT_EQ(Code({}, "", Access::kAdmin), kOk);
  EXPECT_EQ(Code({}, "Bearer anything", Access::kAdmin), kOk);
}

TEST(ApiKeysTest, BothKeysKeepAdminCallsForTheAdminKey) {
  const ApiKeys keys{.client = "client", .admin = "admin"};
  EXPECT_EQ(Code(keys, "", Access::kClient), kUnauthenticated);
  EXPECT_EQ(Code(keys, "Bearer wrong", Access::kClient), kUnauthenticated);
  EXPECT_EQ(Code(keys, "Bearer client", Access::kClient), kOk);
  EXPECT_EQ(Code(keys, "Bearer admin", Access::kClient), kOk);
  EXPECT_EQ(Code(keys, "Bearer client", Access::kAdmin), kDenied);
  EXPECT_EQ(Code(keys, "Bearer admin", Access::kAdmin), kOk);
  EXPECT_EQ(Code(keys, "", Access::kAdmin), kUnauthenticated);
  EXPECT_EQ(Code(keys, "bearer  admin ", Access::kAdmin), kOk);  // scheme in any case
  EXPECT_EQ(Code(keys, "Basic admin", Access::kAdmin), kUnauthenticated);
  EXPECT_EQ(Code(keys, "admin", Access::kAdmin), kUnauthenticated);
  EXPECT_EQ(Code(keys, "Bearer adminx", Access::kAdmin), kUnauthenticated);
  EXPECT_EQ(Code(keys, "Bearer clien", Access::kClient), kUnauthenticated);
}

TEST(ApiKeysTest, OneClientKeyGuardsEverything) {
  const ApiKeys keys{.client = "client"};
  EXPECT_EQ(Code(keys, "", Access::kClient), kUnauthenticated);
  EXPECT_EQ(Code(keys, "", Access::kAdmin), kUnauthenticated);
  EXPECT_EQ(Code(keys, "Bearer client", Access::kAdmin), kOk);
}

TEST(ApiKeysTest, AnAdminKeyAloneLeavesClientCallsOpen) {
  const ApiKeys keys{.admin = "admin"};
  EXPECT_EQ(Code(keys, "", Access::kClient), kOk);
  EXPECT_EQ(Code(keys, "", Access::kAdmin), kUnauthenticated);
  EXPECT_EQ(Code(keys, "Bearer admin", Access::kAdmin), kOk);
}

TEST(ApiKeysTest, MessagesNeverCarryAKey) {
  const ApiKeys keys{.client = "client-secret", .admin = "admin-secret"};
  for (const char* given : {"", "Bearer client-secret", "Bearer admin-secre"}) {
    const absl::Status s = CheckAuthorization(keys, given, Access::kAdmin);
    EXPECT_EQ(s.message().find("secret"), std::string::npos) << s;
  }
}

}  // namespace
}  // namespace loom
