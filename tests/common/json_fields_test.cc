// The JSON field readers every document parser uses: fallbacks, the two null and integer
// dialects, and errors that name the field where it sits.
#include "common/json_fields.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace loom {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

const JsonPlace kStrict{.path = "load_config", .null_is_absent = false};
const JsonPlace kFile{.file = "m/config.json", .integral_floats = true};

TEST(JsonFieldsTest, AbsentFieldsGiveTheFallback) {
  const json j = {{"n", nullptr}};
  EXPECT_EQ(*JsonInt(j, "x", kFile, 7), 7);
  EXPECT_EQ(*JsonInt(j, "n", kFile, 7), 7);  // null is "unset" in HF files
  EXPECT_EQ(*JsonString(json::array(), "x", kFile, "d"), "d");
  EXPECT_EQ(*JsonBool(j, "x", kStrict, true), true);
}

TEST(JsonFieldsTest, ReadsEachType) {
  const json j = json::parse(R"({"i": -3, "u": 18446744073709551615, "d": 0.5, "b": false,
                                 "s": "x", "f": 1024.0})");
  EXPECT_EQ(*JsonInt(j, "i", kStrict, 0), -3);
  EXPECT_EQ(*JsonUint(j, "u", kStrict, 0), 18446744073709551615ull);
  EXPECT_EQ(*JsonNumber(j, "d", kStrict, 0), 0.5);
  EXPECT_EQ(*JsonNumber(j, "i", kStrict, 0), -3.0);
  EXPECT_EQ(*JsonBool(j, "b", kStrict, true), false);
  EXPECT_EQ(*JsonString(j, "s", kStrict, ""), "x");
  EXPECT_EQ(*JsonInt(j, "f", kFile, 0), 1024);
  EXPECT_EQ(*JsonRequiredInt(j, "i", kFile), -3);
}

TEST(JsonFieldsTest, StrictPlacesNameTheKeyPath) {
  const json j = json::parse(R"({"seed": -1, "s": null, "f": 16.0, "big": 9223372036854775808})");
  EXPECT_EQ(JsonUint(j, "seed", kStrict, 0).status().message(),
            "load_config.seed: expected an unsigned integer, got number -1");
  EXPECT_EQ(JsonString(j, "s", kStrict, "").status().message(),
            "load_config.s: expected a string, got null");
  EXPECT_EQ(JsonInt(j, "f", kStrict, 0).status().message(),
            "load_config.f: expected an integer, got number 16.0");
  EXPECT_EQ(JsonInt(j, "big", kStrict, 0).status().message(), "load_config.big: out of range");
  EXPECT_EQ(JsonInt(j, "seed", JsonPlace{.null_is_absent = false}, 0).value(), -1);
}

TEST(JsonFieldsTest, FilePlacesNameTheFileAndQuoteTheField) {
  const json j = json::parse(R"({"hidden_size": "64", "rope": {"factor": [1]}})");
  const absl::Status s = JsonInt(j, "hidden_size", kFile, 0).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(),
            "m/config.json: field \"hidden_size\": expected an integer, got string \"64\"");
  EXPECT_EQ(JsonRequiredInt(j, "vocab_size", kFile).status().message(),
            "m/config.json: field \"vocab_size\": required but missing");
  // Arrays and objects are named by type only.
  EXPECT_EQ(JsonNumber(j["rope"], "factor", kFile.Child("rope"), 1).status().message(),
            "m/config.json: field \"rope.factor\": expected a number, got array");
  EXPECT_THAT(std::string(JsonInt(j, "hidden_size", kFile, 0).status().message()),
              HasSubstr("\"hidden_size\""));
}

TEST(JsonFieldsTest, TypeErrorForACallersOwnField) {
  EXPECT_EQ(JsonTypeError(JsonPlace{.path = "decoder"}, "decoders", "an array", nullptr).message(),
            "decoder.decoders: expected an array, found none");
}

}  // namespace
}  // namespace loom
