// The serving engine (its rank in this process): batching, preemption and sampling never change
// what a request gets.
#include <gtest/gtest.h>

#include "controller/serving_engine.h"
#include "tests/e2e/in_process.h"
#include "tests/e2e/model_dir.h"

namespace loom {
namespace {

EngineConfig Config(const std::string& model, int64_t kv_bytes = 8 << 20) {
  EngineConfig c;
  c.load.model = model;
  c.cache.block_size = 4;
  c.cache.kv_cache_bytes = kv_bytes;
  return c;
}

std::vector<GenerationRequest> Requests(int n, float temperature) {
  std::vector<GenerationRequest> out;
  for (int i = 0; i < n; ++i) {
    GenerationRequest r;
    for (int j = 0; j < 3 + 5 * i; ++j) r.prompt_ids.push_back((7 * j + 13 * i + 1) % 200);
    r.max_tokens = 12 + 3 * i;
    r.ignore_eos = true;
    r.sampling.temperature = temperature;
    r.sampling.top_k = temperature > 0 ? 50 : 0;
    r.sampling.top_p = temperature > 0 ? 0.9f : 1.0f;
    r.sampling.seed = 100 + i;
    out.push_back(r);
  }
  return out;
}

std::vector<std::vector<int32_t>> Outputs(ServingEngine& engine,
                                          const std::vector<GenerationRequest>& rs) {
  auto results = testing::GenerateAll(engine, rs);
  EXPECT_TRUE(results.ok()) << results.status();
  std::vector<std::vector<int32_t>> out;
  if (!results.ok()) return out;
  for (const auto& r : *results) out.push_back(r.token_ids);
  return out;
}

TEST(EngineTest, BatchedRequestsGetExactlyWhatTheyGetAlone) {
  for (float temperature : {0.0f, 0.8f}) {
    auto engine = testing::StartEngine(Config(testing::FixtureModel()));
    ASSERT_TRUE(engine.ok()) << engine.status();
    const auto requests = Requests(5, temperature);
    const auto together = Outputs(**engine, requests);
    for (size_t i = 0; i < requests.size(); ++i) {
      EXPECT_EQ(Outputs(**engine, {requests[i]})[0], together[i]) << "request " << i;
      EXPECT_EQ(together[i].size(), static_cast<size_t>(requests[i].max_tokens));
    }
  }
}

TEST(EngineTest, PreemptionUnderATinyCacheChangesNoToken) {
  // Room for about two of the five sequences at a time: the rest wait or get preempted.
  auto roomy = testing::StartEngine(Config(testing::FixtureModel()));
  ASSERT_TRUE(roomy.ok()) << roomy.status();
  const ModelConfig& mc = (*roomy)->model_config();
  const int64_t block_bytes = 2 * mc.num_hidden_layers * 4 * mc.num_key_value_heads * mc.head_dim * 4;
  auto tight = testing::StartEngine(Config(testing::FixtureModel(), 16 * block_bytes));
  ASSERT_TRUE(tight.ok()) << tight.status();
  ASSERT_EQ((*tight)->Status().num_kv_blocks, 16);
  for (float temperature : {0.0f, 1.0f}) {
    const auto requests = Requests(5, temperature);
    const int64_t before = (*tight)->Status().preemptions;
    const auto results = Outputs(**tight, requests);
    const auto expected = Outputs(**roomy, requests);
    ASSERT_EQ(results.size(), requests.size());
    for (size_t i = 0; i < requests.size(); ++i) {
      EXPECT_EQ(results[i], expected[i]) << "request " << i;
    }
    EXPECT_GT((*tight)->Status().preemptions, before)
        << "the cache was meant to be too small to avoid preemption";
  }
}

TEST(EngineTest, SameSeedSameTokensDifferentSeedsDiffer) {
  auto engine = testing::StartEngine(Config(testing::FixtureModel()));
  ASSERT_TRUE(engine.ok()) << engine.status();
  GenerationRequest r = Requests(1, 1.0f)[0];
  r.max_tokens = 24;
  r.sampling.top_k = 0;
  r.sampling.top_p = 1.0f;
  const auto a = Outputs(**engine, {r})[0];
  const auto b = Outputs(**engine, {r})[0];
  EXPECT_EQ(a, b);
  int differing = 0;
  for (uint64_t seed = 1; seed <= 4; ++seed) {
    GenerationRequest other = r;
    other.sampling.seed = r.sampling.seed + seed;
    if (Outputs(**engine, {other})[0] != a) ++differing;
  }
  EXPECT_GE(differing, 3);
  GenerationRequest greedy = r;
  greedy.sampling.temperature = 0;
  EXPECT_NE(Outputs(**engine, {greedy})[0], a) << "sampling at temperature 1 looked greedy";
}

TEST(EngineTest, RejectsBadRequestsAndKeepsServing) {
  auto engine = testing::StartEngine(Config(testing::FixtureModel()));
  ASSERT_TRUE(engine.ok()) << engine.status();
  ServingRequest bad;
  bad.generation = Requests(1, 0)[0];
  bad.generation.prompt_ids.push_back(static_cast<int32_t>((*engine)->model_config().vocab_size));
  auto s = (*engine)->Submit(bad);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("outside"), std::string::npos) << s.status();
  ServingRequest negative;
  negative.generation = Requests(1, 0)[0];
  negative.generation.sampling.temperature = -1;
  EXPECT_FALSE((*engine)->Submit(negative).ok());
  EXPECT_EQ((*engine)->Status().running_requests, 0);
  EXPECT_EQ(Outputs(**engine, Requests(1, 0))[0].size(), 12u);
}

}  // namespace
}  // namespace loom
