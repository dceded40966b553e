// The worker's method table: registration rules, calls, and what each method declares.
#include "worker/method_registry.h"

#include <gtest/gtest.h>

#include "absl/strings/match.h"

namespace loom {
namespace {

MethodHandler Echo() {
  return [](const nlohmann::json& args) -> absl::StatusOr<nlohmann::json> { return args; };
}

TEST(MethodRegistryTest, CallsRunTheHandlerAndUnknownNamesListTheKnownOnes) {
  MethodRegistry registry;
  ASSERT_TRUE(registry.Register("echo", Echo()).ok());
  absl::StatusOr<nlohmann::json> got = registry.Call("echo", {{"x", 1}});
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ((*got)["x"], 1);
  absl::StatusOr<nlohmann::json> missing = registry.Call("nope", {});
  EXPECT_TRUE(absl::IsNotFound(missing.status()));
  EXPECT_TRUE(absl::StrContains(missing.status().message(), "echo")) << missing.status();
}

TEST(MethodRegistryTest, RegistrationRefusesDuplicatesEmptyNamesAndEmptyHandlers) {
  MethodRegistry registry;
  ASSERT_TRUE(registry.Register("a", Echo()).ok());
  EXPECT_TRUE(absl::IsAlreadyExists(registry.Register("a", Echo())));
  EXPECT_TRUE(absl::IsInvalidArgument(registry.Register("", Echo())));
  EXPECT_TRUE(absl::IsInvalidArgument(registry.Register("b", MethodHandler())));
  EXPECT_EQ(registry.Names(), std::vector<std::string>{"a"});
}

TEST(MethodRegistryTest, EachMethodKeepsItsSpecAndReadOnlyOnesNeitherNeedAdminNorRunKernels) {
  MethodRegistry registry;
  ASSERT_TRUE(registry.Register("load", Echo(), MethodSpec{.path_args = {"/path"}}).ok());
  ASSERT_TRUE(registry.Register("describe", Echo(), ReadOnlyMethod()).ok());
  const MethodSpec* load = registry.Spec("load");
  const MethodSpec* describe = registry.Spec("describe");
  ASSERT_NE(load, nullptr);
  ASSERT_NE(describe, nullptr);
  // The default is the safe one: admin only, and a thread of its own for kernels.
  EXPECT_TRUE(load->admin);
  EXPECT_TRUE(load->runs_kernels);
  EXPECT_EQ(load->path_args, std::vector<std::string>{"/path"});
  EXPECT_FALSE(describe->admin);
  EXPECT_FALSE(describe->runs_kernels);
  EXPECT_EQ(registry.Spec("nope"), nullptr);
  const nlohmann::json specs = registry.Specs();
  EXPECT_EQ(specs["load"]["admin"], true);
  EXPECT_EQ(specs["describe"]["admin"], false);
}

}  // namespace
}  // namespace loom
