// The engine flags every `loom` verb shares, turned into an EngineConfig.

#include <string>
#include <vector>

#include "common/flags.h"
#include "common/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tools/engine_flags.h"

namespace loom::cli {
namespace {

using ::testing::HasSubstr;

absl::StatusOr<EngineConfig> FromArgs(std::vector<std::string> args) {
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  LOOM_ASSIGN_OR_RETURN(
      Flags flags, Flags::Parse(static_cast<int>(argv.size()), argv.data(), 0, EngineFlagSpecs()));
  return EngineConfigFromFlags(flags);
}

TEST(EngineConfigFlagsTest, DefaultsMatchEngineConfig) {
  absl::StatusOr<EngineConfig> c = FromArgs({"--model", "/m"});
  ASSERT_TRUE(c.ok()) << c.status();
  const EngineConfig defaults;
  EXPECT_EQ(c->load.load_format, defaults.load.load_format);
  EXPECT_EQ(c->load.strategy, defaults.load.strategy);
  EXPECT_EQ(c->load.dummy_seed, defaults.load.dummy_seed);
  EXPECT_EQ(c->load.dummy_range, defaults.load.dummy_range);
}

TEST(EngineConfigFlagsTest, ReadsTheLoadFlags) {
  absl::StatusOr<EngineConfig> c =
      FromArgs({"--model", "/m", "--load-format", "dummy", "--load-strategy=broadcast",
                "--dummy-seed", "18446744073709551615", "--dummy-range", "0.25"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->load.load_format, "dummy");
  EXPECT_EQ(c->load.strategy, "broadcast");
  EXPECT_EQ(c->load.dummy_seed, 18446744073709551615ull);
  EXPECT_EQ(c->load.dummy_range, 0.25);

  c = FromArgs({"--model", "/m", "--load-format", "sharded_state", "--load-strategy", "per_rank"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->load.load_format, "sharded_state");
  EXPECT_EQ(c->load.strategy, "per_rank");
}

TEST(EngineConfigFlagsTest, HelpListsTheLoadFlags) {
  const std::string usage = Flags::Usage(EngineFlagSpecs());
  for (const char* flag : {"--load-format", "--load-strategy", "--dummy-seed", "--dummy-range"}) {
    EXPECT_THAT(usage, HasSubstr(flag));
  }
}

struct BadFlags {
  std::vector<std::string> args;
  std::string message;
};

TEST(EngineConfigFlagsTest, BadValuesNameTheFlag) {
  const std::vector<BadFlags> cases = {
      {{"--load-format", "bogus"},
       "--load-format: \"bogus\" is not one of auto, dummy, sharded_state"},
      {{"--load-format", ""}, "--load-format"},
      {{"--load-strategy", "scatter"},
       "--load-strategy: \"scatter\" is not one of per_rank, broadcast"},
      {{"--dummy-seed", "-1"}, "--dummy-seed: \"-1\" is not a non-negative integer"},
      {{"--dummy-seed", "seven"}, "--dummy-seed: \"seven\""},
      {{"--dummy-seed", "18446744073709551616"}, "--dummy-seed"},
      {{"--dummy-range", "wide"}, "--dummy-range: \"wide\" is not a number"},
      {{"--dummy-range", "-1"}, "--dummy-range: \"-1\" must be > 0"},
      {{"--dummy-range", "0"}, "--dummy-range"},
      {{"--dummy-range", "inf"}, "--dummy-range"},
      {{"--dummy-range", "nan"}, "--dummy-range"},
  };
  for (const BadFlags& bad : cases) {
    std::vector<std::string> args = {"--model", "/m"};
    args.insert(args.end(), bad.args.begin(), bad.args.end());
    absl::StatusOr<EngineConfig> c = FromArgs(args);
    ASSERT_FALSE(c.ok()) << bad.message;
    EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument) << bad.message;
    EXPECT_THAT(std::string(c.status().message()), HasSubstr(bad.message));
  }
}

}  // namespace
}  // namespace loom::cli
