// EngineConfig's JSON form: every field round-trips, and parsing is strict (unknown keys and
// wrong types are errors naming the key path).
#include "common/engine_config_json.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace loom {
namespace {

using ::testing::HasSubstr;

// Every field set to something other than its default.
EngineConfig NonDefaultConfig() {
  EngineConfig c;
  c.load.model = "/models/llama \"quoted\"";
  c.load.load_format = "dummy";
  c.load.strategy = "broadcast";
  c.load.dummy_seed = 18446744073709551615ull;  // above int64's range
  c.load.dummy_range = 0.0123456789012345;
  c.load.stage_share = 0.25;
  c.load.weight_dtype = DType::kF32;
  c.cache.block_size = 32;
  c.cache.kv_cache_bytes = int64_t{3} << 33;
  c.scheduler.max_num_seqs = 7;
  c.scheduler.max_num_batched_tokens = 333;
  c.scheduler.max_model_len = 4096;
  c.num_threads = 5;
  return c;
}

void ExpectSame(const EngineConfig& a, const EngineConfig& b) {
  EXPECT_EQ(a.load.model, b.load.model);
  EXPECT_EQ(a.load.load_format, b.load.load_format);
  EXPECT_EQ(a.load.strategy, b.load.strategy);
  EXPECT_EQ(a.load.dummy_seed, b.load.dummy_seed);
  EXPECT_EQ(a.load.dummy_range, b.load.dummy_range);  // exactly: JSON keeps every double
  EXPECT_EQ(a.load.stage_share, b.load.stage_share);
  EXPECT_EQ(a.load.weight_dtype, b.load.weight_dtype);
  EXPECT_EQ(a.cache.block_size, b.cache.block_size);
  EXPECT_EQ(a.cache.kv_cache_bytes, b.cache.kv_cache_bytes);
  EXPECT_EQ(a.scheduler.max_num_seqs, b.scheduler.max_num_seqs);
  EXPECT_EQ(a.scheduler.max_num_batched_tokens, b.scheduler.max_num_batched_tokens);
  EXPECT_EQ(a.scheduler.max_model_len, b.scheduler.max_model_len);
  EXPECT_EQ(a.num_threads, b.num_threads);
}

TEST(EngineConfigJsonTest, EveryFieldRoundTrips) {
  const EngineConfig c = NonDefaultConfig();
  absl::StatusOr<EngineConfig> back = EngineConfigFromJson(EngineConfigToJson(c));
  ASSERT_TRUE(back.ok()) << back.status();
  ExpectSame(c, *back);
}

TEST(EngineConfigJsonTest, DefaultsRoundTrip) {
  const EngineConfig c;
  absl::StatusOr<EngineConfig> back = EngineConfigFromJson(EngineConfigToJson(c));
  ASSERT_TRUE(back.ok()) << back.status();
  ExpectSame(c, *back);
  EXPECT_EQ(back->load.strategy, "per_rank");
  EXPECT_EQ(back->load.dummy_seed, 0u);
  EXPECT_EQ(back->load.dummy_range, 1e-3);
  EXPECT_FALSE(back->load.weight_dtype.has_value());  // auto: the checkpoint's own
  EXPECT_THAT(EngineConfigToJson(c), HasSubstr("\"weight_dtype\":\"auto\""));
}

TEST(EngineConfigJsonTest, WeightDtypeTakesAutoAndFloat16) {
  absl::StatusOr<EngineConfig> f16 =
      EngineConfigFromJson(R"({"load_config": {"weight_dtype": "float16"}})");
  ASSERT_TRUE(f16.ok()) << f16.status();
  EXPECT_EQ(f16->load.weight_dtype, DType::kF16);
  absl::StatusOr<EngineConfig> automatic =
      EngineConfigFromJson(R"({"load_config": {"weight_dtype": "auto"}})");
  ASSERT_TRUE(automatic.ok()) << automatic.status();
  EXPECT_FALSE(automatic->load.weight_dtype.has_value());
}

TEST(EngineConfigJsonTest, WritesTheDocumentedKeys) {
  const std::string json = EngineConfigToJson(NonDefaultConfig());
  for (const char* key :
       {"\"load_config\":", "\"cache_config\":", "\"scheduler_config\":", "\"num_threads\":",
        "\"strategy\":\"broadcast\"", "\"dummy_seed\":18446744073709551615",
        "\"dummy_range\":", "\"load_format\":\"dummy\"", "\"weight_dtype\":\"float32\""}) {
    EXPECT_THAT(json, HasSubstr(key));
  }
  EXPECT_THAT(json, ::testing::Not(HasSubstr("\"load\":")));
}

TEST(EngineConfigJsonTest, MissingKeysKeepTheirDefaults) {
  absl::StatusOr<EngineConfig> c =
      EngineConfigFromJson(R"({"load_config": {"model": "m", "dummy_range": 2}})");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->load.model, "m");
  EXPECT_EQ(c->load.dummy_range, 2.0);  // an integer is a number too
  EXPECT_EQ(c->load.load_format, "auto");
  EXPECT_EQ(c->load.strategy, "per_rank");
  EXPECT_EQ(c->cache.block_size, 16);
  EXPECT_EQ(c->scheduler.max_num_seqs, 64);
}

struct BadJson {
  std::string json;
  std::string message;
};

TEST(EngineConfigJsonTest, StrictErrorsNameTheKeyPath) {
  const std::vector<BadJson> cases = {
      {"{", "not valid JSON"},
      {"[1]", "config: expected an object, got array"},
      {R"({"load": {"model": "m"}})", "unknown key \"load\""},
      {R"({"cache": {}})", "(known: cache_config, enforce_eager, load_config, num_threads, scheduler_config)"},
      {R"({"load_config": {"modle": "m"}})",
       "unknown key \"load_config.modle\" (known: dummy_range, dummy_seed, load_format, model, "
       "stage_share, strategy, weight_dtype)"},
      {R"({"load_config": 3})", "load_config: expected an object, got number"},
      {R"({"load_config": {"dummy_range": "big"}})",
       "load_config.dummy_range: expected a number, got string"},
      {R"({"load_config": {"dummy_seed": -1}})",
       "load_config.dummy_seed: expected an unsigned integer, got number"},
      {R"({"load_config": {"dummy_seed": 1.5}})", "load_config.dummy_seed: expected an unsigned"},
      {R"({"load_config": {"dummy_seed": "7"}})", "load_config.dummy_seed: expected an unsigned"},
      {R"({"load_config": {"strategy": 1}})", "load_config.strategy: expected a string"},
      {R"({"load_config": {"load_format": null}})", "load_config.load_format: expected a string"},
      {R"({"load_config": {"weight_dtype": "int8"}})", "load_config.weight_dtype: unsupported"},
      {R"({"cache_config": {"block_size": 1.5}})",
       "cache_config.block_size: expected an integer, got number"},
      {R"({"cache_config": {"kv_cache_bytes": 9223372036854775808}})",
       "cache_config.kv_cache_bytes: out of range"},
      {R"({"scheduler_config": {"max_num_seqs": "8"}})",
       "scheduler_config.max_num_seqs: expected an integer, got string"},
      {R"({"scheduler_config": {"max_len": 8}})", "unknown key \"scheduler_config.max_len\""},
      {R"({"num_threads": true})", "num_threads: expected an integer, got boolean"},
      {R"({"num_threads": 4294967296})", "num_threads: out of range"},
  };
  for (const BadJson& c : cases) {
    absl::StatusOr<EngineConfig> config = EngineConfigFromJson(c.json);
    ASSERT_FALSE(config.ok()) << c.json;
    EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument) << c.json;
    EXPECT_THAT(std::string(config.status().message()), HasSubstr(c.message)) << c.json;
  }
}

}  // namespace
}  // namespace loom
