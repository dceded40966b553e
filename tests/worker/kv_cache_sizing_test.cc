// The GPU rank's KV sizing rule, run on the host through a device whose memory figures the
// test chooses: the same SizeKvCache a GPU rank calls after its load.
#include "worker/kv_cache_sizing.h"

#include <gtest/gtest.h>

#include <memory>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "kernels/backend.h"
#include "kernels/cpu/cpu_kernels.h"
#include "tests/test_paths.h"

namespace loom {
namespace {

// The host in every respect but Memory(): `memory` less what its tensors hold while they live
// (so the release of the profiling cache is seen, as on a GPU).
class FakeDevice : public kernels::ExecutionContext {
 public:
  explicit FakeDevice(kernels::DeviceMemory memory)
      : host_(kernels::cpu::NewHostContext()), memory_(memory) {}
  Device device() const override { return host_->device(); }
  std::string Description() const override { return "fake device"; }
  absl::StatusOr<Tensor> Allocate(DType dtype, std::vector<int64_t> shape) override {
    absl::StatusOr<Tensor> t = host_->Allocate(dtype, shape);
    if (!t.ok()) return t;
    const int64_t bytes = static_cast<int64_t>(t->nbytes());
    *live_ += bytes;
    // The view's owner keeps the storage and gives its bytes back when the last view goes.
    auto storage = std::make_shared<Tensor>(*t);
    std::shared_ptr<const void> owner(
        storage->raw_data(), [storage, live = live_, bytes](const void*) { *live -= bytes; });
    return Tensor::Borrow(t->raw_data(), dtype, std::move(shape), std::move(owner));
  }
  absl::Status Upload(const Tensor& host, const Tensor& dst) override {
    return host_->Upload(host, dst);
  }
  absl::Status Download(const Tensor& src, const Tensor& host) override {
    return host_->Download(src, host);
  }
  absl::Status Synchronize() override { return absl::OkStatus(); }
  absl::StatusOr<kernels::DeviceMemory> Memory() const override {
    kernels::DeviceMemory m = memory_;
    m.free_bytes -= *live_;
    return m;
  }
  kernels::Backend& backend() override { return host_->backend(); }

 private:
  std::unique_ptr<kernels::ExecutionContext> host_;
  kernels::DeviceMemory memory_;
  std::shared_ptr<int64_t> live_ = std::make_shared<int64_t>(0);
};

std::string Model() {
  return absl::StrCat(testing::SourceDir(), "/tests/data/models/llama-gqa-f32");
}

absl::StatusOr<std::unique_ptr<ModelRunner>> Runner(FakeDevice& device, int64_t blocks) {
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
  FakeDevice device({kTotal, kTotal - kOthers});
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
    FakeDevice device({kTotal, kTotal - kOthers});
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
  FakeDevice device({kTotal, kTotal - kOthers});
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
  FakeDevice device({kTotal, kTotal});
  auto runner = Runner(device, 2);
  ASSERT_TRUE(runner.ok()) << runner.status();
  auto plan = SizeKvCache(**runner, CacheConfig{}, 9);  // 3 blocks of 4
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace loom
