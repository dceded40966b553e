// The command-line parser every binary uses: both value spellings, declared-only flags, errors
// that name the flag, and the exit codes RunVerb gives.
#include "common/flags.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace loom::cli {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

const std::vector<FlagSpec> kSpecs = {{"name", false, "a name", "x"},
                                      {"count", false, "", ""},
                                      {"seed", false, "", ""},
                                      {"ratio", false, "", ""},
                                      {"size", false, "", ""},
                                      {"quick", true, "", ""},
                                      {"help", true, "show this help", "", 'h'}};

absl::StatusOr<Flags> Parse(std::vector<std::string> args) {
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  return Flags::Parse(static_cast<int>(argv.size()), argv.data(), 0, kSpecs);
}

std::string Error(std::vector<std::string> args) {
  absl::StatusOr<Flags> flags = Parse(std::move(args));
  EXPECT_FALSE(flags.ok());
  return flags.ok() ? "" : std::string(flags.status().message());
}

TEST(FlagsTest, ReadsBothSpellingsBooleansAndPositionals) {
  absl::StatusOr<Flags> flags =
      Parse({"--name", "a", "in.txt", "--count=3", "--quick", "--", "-x", "--name=b"});
  ASSERT_TRUE(flags.ok()) << flags.status();
  EXPECT_EQ(flags->String("name"), "b");
  EXPECT_THAT(flags->All("name"), ElementsAre("a", "b"));
  EXPECT_EQ(*flags->Int("count", 0), 3);
  EXPECT_TRUE(flags->Bool("quick"));
  EXPECT_FALSE(flags->Bool("help"));
  EXPECT_EQ(*flags->Int("seed", 7), 7);
  EXPECT_THAT(flags->positional(), ElementsAre("in.txt", "--", "-x"));
}

TEST(FlagsTest, DeclaredShortNameSetsTheBooleanFlag) {
  absl::StatusOr<Flags> flags = Parse({"-h"});
  ASSERT_TRUE(flags.ok()) << flags.status();
  EXPECT_TRUE(flags->Bool("help"));
  EXPECT_THAT(Parse({"-q"})->positional(), ElementsAre("-q"));
}

TEST(FlagsTest, ParseErrorsNameTheFlag) {
  EXPECT_EQ(Error({"--bogus"}), "unknown flag --bogus");
  EXPECT_EQ(Error({"--name"}), "--name needs a value");
  EXPECT_EQ(Error({"--quick=yes"}), "--quick takes no value");
}

TEST(FlagsTest, BadValuesNameTheFlagAndTheValue) {
  absl::StatusOr<Flags> flags =
      Parse({"--count", "3x", "--seed", "-1", "--ratio", "inf", "--size", "lots"});
  ASSERT_TRUE(flags.ok());
  EXPECT_EQ(flags->Int("count", 0).status().message(), "--count: \"3x\" is not an integer");
  EXPECT_EQ(flags->Uint("seed", 0).status().message(),
            "--seed: \"-1\" is not a non-negative integer");
  EXPECT_EQ(flags->Double("ratio", 0).status().message(), "--ratio: \"inf\" is not a number");
  EXPECT_THAT(std::string(flags->Bytes("size", 0).status().message()),
              HasSubstr("--size: \"lots\" is not a size"));
}

TEST(FlagsTest, ReadsFullRangeSeedsAndSizes) {
  absl::StatusOr<Flags> flags = Parse({"--seed", "18446744073709551615", "--size", "2G"});
  ASSERT_TRUE(flags.ok());
  EXPECT_EQ(*flags->Uint("seed", 0), 18446744073709551615ull);
  EXPECT_EQ(*flags->Bytes("size", 0), int64_t{2} << 30);
}

TEST(FlagsTest, UsageListsFlagsWithHelpAndDefaults) {
  const std::string usage = Flags::Usage(kSpecs);
  EXPECT_THAT(usage, HasSubstr("--name VALUE"));
  EXPECT_THAT(usage, HasSubstr("a name (default: x)"));
  EXPECT_THAT(usage, HasSubstr("--quick"));
}

absl::Status Fails(const Flags&) { return absl::InvalidArgumentError("no"); }

int RunTool(std::vector<std::string> args) {
  args.insert(args.begin(), "tool");
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  return RunVerb("tool", static_cast<int>(argv.size()), argv.data(), kSpecs, "usage: tool", &Fails,
                 /*first_arg=*/1);
}

TEST(FlagsTest, RunVerbExitCodes) {
  EXPECT_EQ(RunTool({"--help"}), 0);
  EXPECT_EQ(RunTool({"--bogus"}), 2);
  EXPECT_EQ(RunTool({}), 1);
}

TEST(FlagsTest, ParseIntListNamesWhatIsWrong) {
  EXPECT_THAT(*ParseIntList("1, 2,3", "--tp"), ElementsAre(1, 2, 3));
  EXPECT_EQ(ParseIntList("1,x", "--tp").status().message(), "--tp: \"x\" is not an integer");
}

}  // namespace
}  // namespace loom::cli
