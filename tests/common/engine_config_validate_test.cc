// EngineConfig::Validate: every setting is checked, and the error names it by its key path.
#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "common/engine_config.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace loom {
namespace {

using ::testing::HasSubstr;

EngineConfig Valid() {
  EngineConfig c;
  c.load.model = "/models/m";
  return c;
}

TEST(EngineConfigValidateTest, DefaultsWithAModelAreValid) {
  EXPECT_TRUE(Valid().Validate().ok()) << Valid().Validate();
}

TEST(EngineConfigValidateTest, AcceptsEveryLoadFormatAndStrategy) {
  for (const char* format : {"auto", "dummy", "sharded_state"}) {
    for (const char* strategy : {"per_rank", "broadcast"}) {
      EngineConfig c = Valid();
      c.load.load_format = format;
      c.load.strategy = strategy;
      EXPECT_TRUE(c.Validate().ok()) << format << " " << strategy << ": " << c.Validate();
    }
  }
}

struct BadSetting {
  std::function<void(EngineConfig&)> change;
  std::string message;
};

TEST(EngineConfigValidateTest, RejectsEachBadSettingByName) {
  const std::vector<BadSetting> cases = {
      {[](EngineConfig& c) { c.load.model.clear(); }, "load_config.model"},
      {[](EngineConfig& c) { c.load.load_format = "bogus"; },
       "load_config.load_format \"bogus\" is not supported (supported: auto, dummy, "
       "sharded_state)"},
      {[](EngineConfig& c) { c.load.strategy = "scatter"; },
       "load_config.strategy \"scatter\" is not supported (supported: per_rank, broadcast)"},
      {[](EngineConfig& c) { c.load.dummy_range = 0; }, "load_config.dummy_range"},
      {[](EngineConfig& c) { c.load.stage_share = 0; }, "load_config.stage_share"},
      {[](EngineConfig& c) { c.load.stage_share = 1.5; }, "load_config.stage_share"},
      {[](EngineConfig& c) { c.load.dummy_range = -1; }, "load_config.dummy_range"},
      {[](EngineConfig& c) { c.load.dummy_range = std::numeric_limits<double>::infinity(); },
       "load_config.dummy_range"},
      {[](EngineConfig& c) { c.load.dummy_range = std::nan(""); }, "load_config.dummy_range"},
      {[](EngineConfig& c) { c.load.weight_dtype = DType::kI32; }, "load_config.weight_dtype"},
      {[](EngineConfig& c) { c.cache.block_size = 0; }, "cache_config.block_size"},
      {[](EngineConfig& c) { c.cache.kv_cache_bytes = 0; }, "cache_config.kv_cache_bytes"},
      {[](EngineConfig& c) { c.scheduler.max_num_seqs = 0; }, "scheduler_config.max_num_seqs"},
      {[](EngineConfig& c) { c.scheduler.max_num_batched_tokens = 0; },
       "scheduler_config.max_num_batched_tokens"},
      {[](EngineConfig& c) { c.scheduler.max_model_len = -1; }, "scheduler_config.max_model_len"},
      {[](EngineConfig& c) { c.num_threads = -1; }, "num_threads"},
  };
  for (const BadSetting& bad : cases) {
    EngineConfig c = Valid();
    bad.change(c);
    absl::Status s = c.Validate();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad.message;
    EXPECT_THAT(std::string(s.message()), HasSubstr(bad.message));
  }
}

}  // namespace
}  // namespace loom
