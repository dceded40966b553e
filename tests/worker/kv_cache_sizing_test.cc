// The GPU rank's KV sizing rule, run on the host through a fake GPU whose memory figures the
// test chooses: the same SizeKvCache a GPU rank calls after its load.
#include "worker/kv_cache_sizing.h"

#include <gtest/gtest.h>

#include <memory>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "tests/test_paths.h"
#include "tests/worker/fake_gpu.h"

namespace loom {
namespace {

std::string Model() {
  return absl::StrCat(testing::SourceDir(), "/tests/data/models/llama-gqa-f32");
}

absl::StatusOr<std::unique_ptr<ModelRunner>> Runner(testing::FakeGpu& device, int64_t blocks) {
  absl::StatusOr<ModelConfig> config = ModelConfig::FromModelDir(Model());
  if (!config.ok()) return config.status();
  ModelRunnerOptions options;
  options.decoder.weight_dtype = DType::kF32;
  options.decoder.context = &device;
  options.block_size = 4;
  options.kv_cache_blocks = blocks;
  return ModelRunner::Create(*config, options);
}

constexpr int64_t kTotal = int64_t{64} << 20;
constexpr int64_t kOthers = int64_t{3} << 20;  // held by other processes before the rank came

TEST(KvCacheSizingTest, TheCacheGetsUtilizationLessEverythingHeldAndOneStagedSet) {
  testing::FakeGpu device({kTotal, kTotal - kOthers});
  const int64_t profile_tokens = 37;
  auto runner = Runner(device, ProfileBlocks(profile_tokens, 4));
  ASSERT_TRUE(runner.ok()) << runner.status();
  EXPECT_EQ((*runner)->num_kv_blocks(), 10);  // ceil(37 / 4)
  CacheConfig cache;
  cache.gpu_memory_utilization = 0.5;
  cache.staging_memory = "auto";
  auto plan = SizeKvCache(**runner, cache, profile_tokens);
  ASSERT_TRUE(plan.ok()) << plan.status();

  // Held after the profiling step: other processes, the weights, the step's workspace.
  const int64_t weights = (*runner)->decoder().WeightBytes();
  const int64_t workspace = (*runner)->decoder().WorkspaceBytes();
  EXPECT_GT(workspace, 0);
  const int64_t block = (*runner)->kv_cache().shape().BytesPerBlock();
  const int64_t expected =
      (kTotal / 2 - kOthers - weights - workspace - weights) / block;  // staging = one set
  // Norm weights and the rope table are allocated too: allow their few kilobytes.
  EXPECT_NEAR(plan->num_blocks, expected, 8) << plan->summary;
  EXPECT_EQ((*runner)->num_kv_blocks(), plan->num_blocks);
  EXPECT_EQ((*runner)->kv_cache().nbytes(), plan->kv_bytes);
  EXPECT_TRUE(absl::StrContains(plan->summary, "blocks")) << plan->summary;

  // The resized cache serves: a step over its last block runs.
  StepInput step;
  SequenceStep s;
  s.token_ids = {1, 2, 3};
  s.block_table = {static_cast<int32_t>(plan->num_blocks - 1)};
  s.sample = true;
  step.sequences.push_back(s);
  EXPECT_TRUE((*runner)->Execute(step).ok());
}

TEST(KvCacheSizingTest, NoStagingRoomGivesTheCacheOneWeightSetMore) {
  CacheConfig with, without;
  without.staging_memory = "none";
  with.gpu_memory_utilization = without.gpu_memory_utilization = 0.5;
  int64_t blocks[2] = {0, 0}, weights = 0, block = 0;
  for (int i = 0; i < 2; ++i) {
    testing::FakeGpu device({kTotal, kTotal - kOthers});
    auto runner = Runner(device, ProfileBlocks(16, 4));
    ASSERT_TRUE(runner.ok()) << runner.status();
    auto plan = SizeKvCache(**runner, i == 0 ? with : without, 16);
    ASSERT_TRUE(plan.ok()) << plan.status();
    blocks[i] = plan->num_blocks;
    weights = (*runner)->decoder().WeightBytes();
    block = (*runner)->kv_cache().shape().BytesPerBlock();
  }
  EXPECT_NEAR(blocks[1] - blocks[0], weights / block, 1);
}

TEST(KvCacheSizingTest, TooLittleMemoryIsAClearErrorAndKeepsTheProfilingCache) {
  testing::FakeGpu device({kTotal, kTotal - kOthers});
  auto runner = Runner(device, ProfileBlocks(16, 4));
  ASSERT_TRUE(runner.ok()) << runner.status();
  CacheConfig cache;
  cache.gpu_memory_utilization = 0.05;  // 3.2 MiB: less than the others already hold
  auto plan = SizeKvCache(**runner, cache, 16);
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.status().code(), absl::StatusCode::kResourceExhausted);
  const std::string message(plan.status().message());
  EXPECT_TRUE(absl::StrContains(message, "no room for the KV cache")) << message;
  EXPECT_TRUE(absl::StrContains(message, "weights")) << message;
  EXPECT_TRUE(absl::StrContains(message, "0.05")) << message;
  EXPECT_EQ((*runner)->num_kv_blocks(), 4);
}

TEST(KvCacheSizingTest, AProfilingStepLargerThanTheStartingCacheIsRefused) {
  testing::FakeGpu device({kTotal, kTotal});
  auto runner = Runner(device, 2);
  ASSERT_TRUE(runner.ok()) << runner.status();
  auto plan = SizeKvCache(**runner, CacheConfig{}, 9);  // 3 blocks of 4
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace loom
