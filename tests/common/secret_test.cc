#include "common/secret.h"

#include <gtest/gtest.h>

#include <fstream>

#include "tests/test_paths.h"

namespace loom {
namespace {

TEST(SecretTest, EqualsOnlyTheSameBytes) {
  EXPECT_TRUE(SecretEquals("abc123", "abc123"));
  EXPECT_FALSE(SecretEquals("abc124", "abc123"));
  EXPECT_FALSE(SecretEquals("abc12", "abc123"));
  EXPECT_FALSE(SecretEquals("abc1234", "abc123"));
  EXPECT_FALSE(SecretEquals("abc123abc123", "abc123"));  // the secret repeated is not it
  EXPECT_FALSE(SecretEquals("", "abc123"));
  EXPECT_FALSE(SecretEquals("", ""));  // an empty secret matches nothing
  EXPECT_FALSE(SecretEquals("x", ""));
}

TEST(SecretTest, FilesLoseTheirTrailingNewlineAndBadOnesAreClearErrors) {
  const std::string dir = testing::MakeTempDir("loom-secret");
  std::ofstream(dir + "/ok") << "s3cret-key\n";
  std::ofstream(dir + "/empty") << "\n\n";
  std::ofstream(dir + "/two-lines") << "one\ntwo\n";
  absl::StatusOr<std::string> ok = ReadSecretFile(dir + "/ok", "--api-key-file");
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(*ok, "s3cret-key");
  for (const char* bad : {"/empty", "/two-lines", "/missing"}) {
    absl::StatusOr<std::string> r = ReadSecretFile(dir + bad, "--api-key-file");
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find("--api-key-file"), std::string::npos);
    EXPECT_NE(r.status().message().find(bad), std::string::npos) << r.status();
  }
  // A file the server's user cannot read (a directory reads as nothing).
  EXPECT_FALSE(ReadSecretFile(dir, "--api-key-file").ok());
}

TEST(SecretTest, KeysArePrintableWithoutSpaces) {
  EXPECT_TRUE(CheckSecret("sk-ABC_def.123~", "--api-key").ok());
  EXPECT_FALSE(CheckSecret("", "--api-key").ok());
  EXPECT_FALSE(CheckSecret("two words", "--api-key").ok());
  EXPECT_FALSE(CheckSecret("tab\there", "--api-key").ok());
  EXPECT_FALSE(CheckSecret("caf\xc3\xa9", "--api-key").ok());
}

}  // namespace
}  // namespace loom
