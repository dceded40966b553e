#include "controller/stop_strings.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace loom {
namespace {

// Feeds `pieces` one by one; returns everything released (Flush included when never stopped).
std::string FeedAll(StopStringMatcher& m, const std::vector<std::string>& pieces) {
  std::string out;
  for (const std::string& p : pieces) out += m.Feed(p);
  if (!m.stopped()) out += m.Flush();
  return out;
}

TEST(StopStringMatcherTest, WithoutStopsEverythingPassesAtOnce) {
  StopStringMatcher m;
  EXPECT_EQ(m.Feed("Prince "), "Prince ");
  EXPECT_EQ(m.Feed("Andrew"), "Andrew");
  EXPECT_FALSE(m.stopped());
}

TEST(StopStringMatcherTest, AStopAcrossPiecesEndsTheTextBeforeIt) {
  StopStringMatcher m({"old prince"});
  EXPECT_EQ(FeedAll(m, {", and the o", "ld pr", "ince, who"}), ", and the ");
  EXPECT_TRUE(m.stopped());
  EXPECT_EQ(m.Feed("more"), "");
}

TEST(StopStringMatcherTest, OnlyTheTailThatCouldStartAStopIsHeldBack) {
  StopStringMatcher m({"\n\n"});
  EXPECT_EQ(m.Feed("one\n"), "one");  // "\n" may begin the stop
  EXPECT_EQ(m.Feed("two"), "\ntwo");  // it did not
  EXPECT_EQ(m.Feed("\n"), "");
  EXPECT_EQ(m.Feed("\n"), "");
  EXPECT_TRUE(m.stopped());
}

TEST(StopStringMatcherTest, TheEarliestOfSeveralStopsWins) {
  StopStringMatcher m({"world", "lo"});
  EXPECT_EQ(FeedAll(m, {"hello world"}), "hel");
  StopStringMatcher n({"abc", "bcd"});
  EXPECT_EQ(FeedAll(n, {"xab", "cd"}), "x");
}

TEST(StopStringMatcherTest, HeldTextIsReleasedAtTheEnd) {
  StopStringMatcher m({"END"});
  EXPECT_EQ(FeedAll(m, {"the E", "N"}), "the EN");
  EXPECT_FALSE(m.stopped());
}

TEST(StopStringMatcherTest, ValidateRefusesEmptyTooManyAndTooLong) {
  EXPECT_TRUE(StopStringMatcher::Validate({"a", "bc"}).ok());
  EXPECT_FALSE(StopStringMatcher::Validate({""}).ok());
  EXPECT_FALSE(StopStringMatcher::Validate(std::vector<std::string>(17, "x")).ok());
  EXPECT_FALSE(StopStringMatcher::Validate({std::string(257, 'x')}).ok());
}

}  // namespace
}  // namespace loom
