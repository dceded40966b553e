// update_config's merge-patch: run-time settings change, everything else is rejected whole with
// a message that says what can change, and an error never yields a config.
#include "common/engine_config_patch.h"

#include <string>
#include <vector>

#include "common/engine_config_json.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace loom {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kRuntimeList[] =
    "load_config.model, load_config.load_format, load_config.strategy, load_config.dummy_seed, "
    "load_config.dummy_range";

EngineConfig Current() {
  EngineConfig c;
  c.load.model = "/models/a";
  c.cache.block_size = 16;
  c.scheduler.max_num_seqs = 8;
  c.num_threads = 2;
  c.load.weight_dtype = DType::kBF16;
  return c;
}

std::string Error(const std::string& patch) {
  absl::StatusOr<EngineConfig> next = ApplyConfigPatch(Current(), patch);
  EXPECT_FALSE(next.ok()) << patch << " was accepted";
  if (next.ok()) return "";
  EXPECT_EQ(next.status().code(), absl::StatusCode::kInvalidArgument) << patch;
  return std::string(next.status().message());
}

TEST(EngineConfigPatchTest, RuntimeKeysAreExactlyTheLoadSettings) {
  EXPECT_THAT(RuntimeConfigKeys(),
              ElementsAre("load_config.model", "load_config.load_format", "load_config.strategy",
                          "load_config.dummy_seed", "load_config.dummy_range",
                          "load_config.stage_share"));
}

TEST(EngineConfigPatchTest, ChangesModelAndLoadFormat) {
  absl::StatusOr<EngineConfig> next = ApplyConfigPatch(
      Current(), R"({"load_config": {"model": "/models/b", "load_format": "dummy"}})");
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(next->load.model, "/models/b");
  EXPECT_EQ(next->load.load_format, "dummy");
  // Everything else is kept.
  EXPECT_EQ(next->load.strategy, "per_rank");
  EXPECT_EQ(next->cache.block_size, 16);
  EXPECT_EQ(next->scheduler.max_num_seqs, 8);
  EXPECT_EQ(next->num_threads, 2);
}

TEST(EngineConfigPatchTest, ChangesEveryRuntimeSetting) {
  absl::StatusOr<EngineConfig> next = ApplyConfigPatch(Current(), R"({"load_config": {
      "model": "/models/c", "load_format": "sharded_state", "strategy": "broadcast",
      "dummy_seed": 18446744073709551615, "dummy_range": 0.5}})");
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(next->load.model, "/models/c");
  EXPECT_EQ(next->load.load_format, "sharded_state");
  EXPECT_EQ(next->load.strategy, "broadcast");
  EXPECT_EQ(next->load.dummy_seed, 18446744073709551615ull);
  EXPECT_EQ(next->load.dummy_range, 0.5);
}

TEST(EngineConfigPatchTest, EmptyPatchKeepsTheConfig) {
  absl::StatusOr<EngineConfig> next = ApplyConfigPatch(Current(), "{}");
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(EngineConfigToJson(*next), EngineConfigToJson(Current()));
}

TEST(EngineConfigPatchTest, SameValueOfAFixedSettingIsNoChange) {
  absl::StatusOr<EngineConfig> next = ApplyConfigPatch(Current(), R"({
      "cache_config": {"block_size": 16}, "scheduler_config": {"max_num_seqs": 8},
      "num_threads": 2, "load_config": {"weight_dtype": "bf16", "model": "/models/d"}})");
  ASSERT_TRUE(next.ok()) << next.status();  // "bf16" is the current bfloat16, spelled otherwise
  EXPECT_EQ(next->load.model, "/models/d");
  EXPECT_EQ(next->cache.block_size, 16);
}

TEST(EngineConfigPatchTest, FixedSettingChangeNamesItAndListsTheRuntimeKeys) {
  const std::string e = Error(R"({"cache_config": {"block_size": 32}})");
  EXPECT_THAT(e, HasSubstr("cache_config.block_size cannot change at run time"));
  EXPECT_THAT(e, HasSubstr(kRuntimeList));

  // Every fixed setting is guarded, and a patch changing several names them all.
  for (const char* patch :
       {R"({"cache_config": {"kv_cache_bytes": 1024}})",
        R"({"scheduler_config": {"max_num_seqs": 9}})",
        R"({"scheduler_config": {"max_num_batched_tokens": 9}})",
        R"({"scheduler_config": {"max_model_len": 9}})", R"({"num_threads": 3})",
        R"({"load_config": {"weight_dtype": "float32"}})"}) {
    EXPECT_THAT(Error(patch), HasSubstr(kRuntimeList)) << patch;
  }
  EXPECT_THAT(Error(R"({"num_threads": 3, "cache_config": {"block_size": 32}})"),
              HasSubstr("cache_config.block_size, num_threads cannot change"));
}

TEST(EngineConfigPatchTest, FixedChangeRejectsTheWholePatch) {
  // The runtime part of the patch is not applied either: nothing but the error comes back.
  const std::string e =
      Error(R"({"load_config": {"model": "/models/b"}, "cache_config": {"block_size": 32}})");
  EXPECT_THAT(e, HasSubstr("cache_config.block_size"));
}

TEST(EngineConfigPatchTest, NullIsRejectedNamingTheKey) {
  EXPECT_THAT(Error(R"({"load_config": {"model": null}})"),
              HasSubstr("\"load_config.model\" is null"));
  EXPECT_THAT(Error(R"({"cache_config": null})"), HasSubstr("\"cache_config\" is null"));
  EXPECT_THAT(Error(R"({"load_config": {"load_format": "dummy", "dummy_range": null}})"),
              HasSubstr("\"load_config.dummy_range\" is null"));
}

TEST(EngineConfigPatchTest, UnknownKeyIsRejectedListingTheKnownOnes) {
  EXPECT_THAT(Error(R"({"load_config": {"modl": "/models/b"}})"),
              HasSubstr("unknown key \"load_config.modl\" (known: dummy_range, dummy_seed, "
                        "load_format, model, stage_share, strategy, weight_dtype)"));
  EXPECT_THAT(Error(R"({"load": {"model": "/models/b"}})"),
              HasSubstr("unknown key \"load\" (known: cache_config, enforce_eager, load_config, "
                        "num_threads, scheduler_config)"));
}

TEST(EngineConfigPatchTest, WrongTypeIsRejectedNamingTheKeyPath) {
  EXPECT_THAT(Error(R"({"load_config": {"dummy_range": "small"}})"),
              HasSubstr("load_config.dummy_range: expected a number"));
  EXPECT_THAT(Error(R"({"load_config": {"dummy_seed": -3}})"),
              HasSubstr("load_config.dummy_seed: expected an unsigned integer"));
  EXPECT_THAT(Error(R"({"load_config": "/models/b"})"),
              HasSubstr("load_config: expected an object"));
}

TEST(EngineConfigPatchTest, InvalidValuesAreRejected) {
  EXPECT_THAT(Error(R"({"load_config": {"load_format": "bogus"}})"),
              HasSubstr("load_config.load_format \"bogus\" is not supported (supported: auto, "
                        "dummy, sharded_state)"));
  EXPECT_THAT(Error(R"({"load_config": {"dummy_range": -1}})"),
              HasSubstr("load_config.dummy_range must be finite and > 0"));
  EXPECT_THAT(Error(R"({"load_config": {"dummy_range": 0}})"),
              HasSubstr("load_config.dummy_range"));
  EXPECT_THAT(Error(R"({"load_config": {"strategy": "gossip"}})"),
              HasSubstr("load_config.strategy \"gossip\""));
  EXPECT_THAT(Error(R"({"load_config": {"model": ""}})"), HasSubstr("load_config.model"));
}

TEST(EngineConfigPatchTest, NonObjectPatchIsRejected) {
  for (const char* patch :
       {"[]", "[{\"load_config\": {}}]", "\"load_config\"", "3", "null", "true"}) {
    EXPECT_THAT(Error(patch), HasSubstr("expected a JSON object")) << patch;
  }
}

TEST(EngineConfigPatchTest, MalformedJsonIsRejected) {
  for (const char* patch : {"", "{", R"({"load_config": {"model": "/m"})", "{'a': 1}", "{} {}"}) {
    EXPECT_THAT(Error(patch), HasSubstr("not valid JSON")) << patch;
  }
}

}  // namespace
}  // namespace loom
