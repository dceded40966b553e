// The GPU rank's model path on the CPU: a ModelRunner on testing::FakeGpu (device tensors,
// staged and deferred uploads, downloads for logits and saved parts) gives bit for bit what the
// host path gives, for every load format the fixture has, with logprobs and chunked prompts.
#include "tests/worker/fake_gpu.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "tests/test_paths.h"
#include "worker/comm/communicator.h"
#include "worker/loader/weight_dtype.h"
#include "worker/loader/weight_load.h"
#include "worker/model_runner.h"
#include "worker/weight_manager.h"

namespace loom {
namespace {

std::string Model(const std::string& name) {
  return absl::StrCat(testing::SourceDir(), "/tests/data/models/", name);
}

absl::StatusOr<std::unique_ptr<ModelRunner>> Runner(const std::string& dir,
                                                    kernels::ExecutionContext* context,
                                                    const std::string& format = "auto") {
  LOOM_ASSIGN_OR_RETURN(ModelConfig config, ModelConfig::FromModelDir(dir));
  ModelRunnerOptions options;
  LoadConfig load;
  load.model = dir;
  load.load_format = format;
  options.decoder.context = context;
  LOOM_ASSIGN_OR_RETURN(options.decoder.weight_dtype, ResolveWeightDType(load, config));
  options.block_size = 4;
  options.kv_cache_blocks = 32;
  LOOM_ASSIGN_OR_RETURN(auto runner, ModelRunner::Create(config, options));
  SingleRankCommunicator alone;
  LOOM_RETURN_IF_ERROR(LoadWeights(load, runner->decoder(), alone).status());
  return runner;
}

// Two prompts, one in two chunks, then greedy decode steps: every step's tokens and logits.
absl::StatusOr<std::vector<StepOutput>> RunSteps(ModelRunner& runner) {
  std::vector<StepOutput> outputs;
  const std::vector<int32_t> a = {1, 17, 250, 3, 99, 42, 7}, b = {1, 400, 12, 12, 80};
  auto seq = [](int64_t id, std::vector<int32_t> tokens, int32_t start, bool sample) {
    SequenceStep s;
    s.seq_id = id;
    s.token_ids = std::move(tokens);
    s.start_position = start;
    s.block_table = id == 0 ? std::vector<int32_t>{0, 1, 2, 3} : std::vector<int32_t>{4, 5, 6, 7};
    s.sample = sample;
    s.sampling.logprobs = 3;
    return s;
  };
  StepInput first;
  first.return_logits = true;
  first.sequences = {seq(0, {a.begin(), a.begin() + 4}, 0, false), seq(1, b, 0, true)};
  LOOM_ASSIGN_OR_RETURN(StepOutput out, runner.Execute(first));
  outputs.push_back(out);
  StepInput second = first;
  second.sequences = {seq(0, {a.begin() + 4, a.end()}, 4, true),
                      seq(1, {out.tokens[0]}, static_cast<int32_t>(b.size()), true)};
  int32_t len0 = static_cast<int32_t>(a.size()), len1 = static_cast<int32_t>(b.size()) + 1;
  for (int step = 0; step < 4; ++step) {
    LOOM_ASSIGN_OR_RETURN(out, runner.Execute(second));
    outputs.push_back(out);
    second.sequences = {seq(0, {out.tokens[0]}, len0++, true),
                        seq(1, {out.tokens[1]}, len1++, true)};
  }
  return outputs;
}

void ExpectIdentical(const std::vector<StepOutput>& host, const std::vector<StepOutput>& gpu) {
  ASSERT_EQ(host.size(), gpu.size());
  for (size_t i = 0; i < host.size(); ++i) {
    EXPECT_EQ(host[i].tokens, gpu[i].tokens) << "step " << i;
    ASSERT_EQ(host[i].logits.shape(), gpu[i].logits.shape()) << "step " << i;
    EXPECT_TRUE(gpu[i].logits.device().is_cpu());
    EXPECT_EQ(
        std::memcmp(host[i].logits.raw_data(), gpu[i].logits.raw_data(), host[i].logits.nbytes()),
        0)
        << "step " << i;
    ASSERT_EQ(host[i].logprobs.size(), gpu[i].logprobs.size());
    for (size_t r = 0; r < host[i].logprobs.size(); ++r) {
      EXPECT_EQ(host[i].logprobs[r].top_ids, gpu[i].logprobs[r].top_ids);
      EXPECT_EQ(host[i].logprobs[r].logprob, gpu[i].logprobs[r].logprob);
    }
  }
}

class FakeGpuTest : public ::testing::TestWithParam<std::string> {};

TEST_P(FakeGpuTest, TheDevicePathGivesTheHostsTokensLogitsAndParts) {
  const std::string dir = Model(GetParam());
  auto host = Runner(dir, nullptr);
  ASSERT_TRUE(host.ok()) << host.status();
  testing::FakeGpu gpu;
  auto device = Runner(dir, &gpu);
  ASSERT_TRUE(device.ok()) << device.status();
  // Weights live on the device and read back equal (what save_sharded_state writes).
  for (const ParameterInfo& p : (*host)->decoder().Parameters()) {
    auto on_device = (*device)->decoder().Part(p.name);
    ASSERT_TRUE(on_device.ok());
    EXPECT_EQ(on_device->device(), Device::Cuda(0)) << p.name;
    auto a = (*host)->decoder().HostPart(p.name);
    auto b = (*device)->decoder().HostPart(p.name);
    ASSERT_TRUE(a.ok() && b.ok());
    ASSERT_EQ(a->nbytes(), b->nbytes());
    EXPECT_EQ(std::memcmp(a->raw_data(), b->raw_data(), a->nbytes()), 0) << p.name;
  }
  // The staging overlapped: two copies were in flight at once, never more.
  EXPECT_EQ(gpu.max_pending, 2);
  auto expected = RunSteps(**host);
  ASSERT_TRUE(expected.ok()) << expected.status();
  auto got = RunSteps(**device);
  ASSERT_TRUE(got.ok()) << got.status();
  ExpectIdentical(*expected, *got);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, FakeGpuTest,
                         ::testing::Values("llama-gqa-f32", "llama-bias-bf16", "llama-dynamic-f16",
                                           "qwen3-yarn-bf16", "mistral-swa-bf16"));

TEST(FakeGpuTest, DummyWeightsAndAStagedCopyMatchTheHost) {
  const std::string dir = Model("llama-gqa-f32");
  auto host = Runner(dir, nullptr, "dummy");
  ASSERT_TRUE(host.ok()) << host.status();
  testing::FakeGpu gpu;
  auto device = Runner(dir, &gpu, "dummy");
  ASSERT_TRUE(device.ok()) << device.status();
  // Generated on the device: the host's values, and no weight crossed from the host.
  int64_t weight_bytes = 0;
  for (const ParameterInfo& p : (*device)->decoder().Parameters()) {
    weight_bytes += static_cast<int64_t>((*device)->decoder().Part(p.name)->nbytes());
  }
  EXPECT_LT(gpu.upload_bytes, weight_bytes / 4) << "dummy weights were uploaded";
  auto dummy_on_host = RunSteps(**host);
  auto dummy_on_device = RunSteps(**device);
  ASSERT_TRUE(dummy_on_host.ok() && dummy_on_device.ok());
  ExpectIdentical(*dummy_on_host, *dummy_on_device);
  // A commit copies a staged set on the device (kernels::Copy), pointers unchanged.
  auto shadow = Runner(dir, &gpu);
  ASSERT_TRUE(shadow.ok()) << shadow.status();
  const uint64_t before = (*device)->decoder().BufferAddressDigest();
  ASSERT_TRUE((*device)->decoder().CopyWeightsFrom((*shadow)->decoder()).ok());
  EXPECT_EQ((*device)->decoder().BufferAddressDigest(), before);
  auto real = Runner(dir, nullptr);
  ASSERT_TRUE(real.ok()) << real.status();
  auto expected = RunSteps(**real);
  auto got = RunSteps(**device);
  ASSERT_TRUE(expected.ok() && got.ok());
  ExpectIdentical(*expected, *got);
}

// The weight lifecycle's device paths: a commit switches to the staged set's device buffers
// (no copy), a level-1 sleep moves the weights to host memory and frees the device's, and the
// wake brings them back bit for bit.
TEST(FakeGpuTest, ACommitSwitchesSetsAndALevelOneSleepOffloadsAndRestoresTheWeights) {
  const std::string dir = Model("llama-gqa-f32");
  auto host = Runner(dir, nullptr);
  ASSERT_TRUE(host.ok()) << host.status();
  auto expected = RunSteps(**host);
  ASSERT_TRUE(expected.ok()) << expected.status();
  testing::FakeGpu gpu;
  auto device = Runner(dir, &gpu);
  ASSERT_TRUE(device.ok()) << device.status();
  Decoder& decoder = (*device)->decoder();
  SingleRankCommunicator alone;
  absl::Mutex step_mu;
  DecoderOptions set_options;
  set_options.weight_dtype = decoder.weight_dtype();
  set_options.context = &gpu;
  WeightManager weights(&decoder, set_options, &alone, &step_mu);
  LoadConfig load;
  load.model = dir;
  ASSERT_TRUE(weights.InitialLoad(load).ok());

  const uint64_t first = decoder.BufferAddressDigest();
  ASSERT_TRUE(weights.Stage(load, 2).ok());
  const int64_t uploaded = gpu.upload_bytes;
  auto committed = weights.Commit(2);
  ASSERT_TRUE(committed.ok()) << committed.status();
  EXPECT_EQ(gpu.upload_bytes, uploaded) << "the commit moved bytes";
  EXPECT_NE(decoder.BufferAddressDigest(), first) << "the commit did not switch sets";
  auto after_commit = RunSteps(**device);
  ASSERT_TRUE(after_commit.ok()) << after_commit.status();
  ExpectIdentical(*expected, *after_commit);

  auto free_bytes = [&] { return gpu.Memory()->free_bytes; };
  const int64_t weight_bytes = decoder.WeightBytes();
  const int64_t awake_free = free_bytes();
  auto slept = weights.Sleep(1);
  ASSERT_TRUE(slept.ok()) << slept.status();
  EXPECT_FALSE(decoder.has_weights());
  EXPECT_GE(free_bytes() - awake_free, weight_bytes) << "the device kept the weights";
  EXPECT_FALSE(weights.CheckServing(2).ok());
  EXPECT_FALSE(weights.Stage(load, 3).ok());
  auto woke = weights.Wake(load, 0);
  ASSERT_TRUE(woke.ok()) << woke.status();
  EXPECT_TRUE(weights.CheckServing(2).ok());
  auto after_wake = RunSteps(**device);
  ASSERT_TRUE(after_wake.ok()) << after_wake.status();
  ExpectIdentical(*expected, *after_wake);
}

}  // namespace
}  // namespace loom
