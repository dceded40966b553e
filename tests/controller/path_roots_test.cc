#include "controller/path_roots.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "tests/test_paths.h"

namespace loom {
namespace {

namespace fs = std::filesystem;

TEST(PathRootsTest, NoRootsConfineNothing) {
  PathRoots none;
  EXPECT_FALSE(none.confined());
  EXPECT_TRUE(none.Check("relative/../anything").ok());
}

TEST(PathRootsTest, PathsMustResolveInsideARoot) {
  const std::string dir = fs::canonical(testing::MakeTempDir("loom-roots")).string();
  fs::create_directories(dir + "/root/models");
  fs::create_directories(dir + "/other");
  fs::create_symlink(dir + "/other", dir + "/root/escape");
  fs::create_symlink(dir + "/root/models", dir + "/alias");
  absl::StatusOr<PathRoots> roots = PathRoots::Make({dir + "/root"});
  ASSERT_TRUE(roots.ok()) << roots.status();
  EXPECT_TRUE(roots->Check(dir + "/root").ok());
  EXPECT_TRUE(roots->Check(dir + "/root/models").ok());
  EXPECT_TRUE(roots->Check(dir + "/root/new/dir/to/create").ok());
  EXPECT_TRUE(roots->Check(dir + "/alias/x").ok());  // a link from outside to inside
  EXPECT_EQ(roots->Check(dir + "/other").code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(roots->Check(dir + "/root/escape/x").code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(roots->Check(dir + "/rootx").code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(roots->Check(dir + "/root/../root/models").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(roots->Check("root/models").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(roots->Check("").code(), absl::StatusCode::kInvalidArgument);
  const absl::Status s = roots->Check(dir + "/root/escape/x");
  EXPECT_NE(s.message().find(dir + "/other/x"), std::string::npos) << s;  // where it leads
}

TEST(PathRootsTest, ArgsAreCheckedAtTheirPointers) {
  const std::string dir = fs::canonical(testing::MakeTempDir("loom-roots")).string();
  absl::StatusOr<PathRoots> roots = PathRoots::Make({dir});
  ASSERT_TRUE(roots.ok());
  const std::vector<std::string> pointers = {"/path", "/patch/load_config/model"};
  EXPECT_TRUE(roots->CheckArgs("m", pointers, {{"path", dir + "/x"}}).ok());
  EXPECT_TRUE(roots->CheckArgs("m", pointers, nlohmann::json::object()).ok());  // absent
  EXPECT_TRUE(roots->CheckArgs("m", pointers, {{"patch", "not an object"}}).ok());
  EXPECT_EQ(roots->CheckArgs("m", pointers, {{"path", "/etc"}}).code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(
      roots->CheckArgs("m", pointers, {{"patch", {{"load_config", {{"model", "/etc"}}}}}}).code(),
      absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(roots->CheckArgs("m", pointers, {{"path", 3}}).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(PathRootsTest, RootsMustBeDirectories) {
  EXPECT_FALSE(PathRoots::Make({"/no/such/root"}).ok());
}

}  // namespace
}  // namespace loom
