// Prefix caching end to end, in process: requests sharing a long prefix give the same greedy
// tokens with the cache as without it (trained model), logits within the HF tolerance (random
// fixture), the second wave finds the prefix, and the engine counts it.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tests/e2e/in_process.h"
#include "tests/test_paths.h"

namespace loom {
namespace {

std::vector<GenerationRequest> SharedPrefixRequests(int n, int prefix_len, int max_tokens,
                                                    bool logits) {
  std::vector<GenerationRequest> requests;
  for (int i = 0; i < n; ++i) {
    GenerationRequest r;
    for (int t = 0; t < prefix_len; ++t) r.prompt_ids.push_back(3 + (t * 7) % 50);
    for (int t = 0; t <= i % 3; ++t) r.prompt_ids.push_back(60 + i + t);  // own suffixes
    r.max_tokens = max_tokens;
    r.ignore_eos = true;
    r.return_logits = logits;
    requests.push_back(std::move(r));
  }
  return requests;
}

struct Waves {
  std::vector<Completion> first, second;
  EngineStatus status;
};

Waves Generate(const std::string& model, bool prefix_caching, bool logits) {
  EngineConfig config;
  config.load.model = model;
  config.cache.kv_cache_bytes = 64 << 20;
  config.cache.block_size = 4;
  config.scheduler.enable_prefix_caching = prefix_caching;
  Waves run;
  auto engine = testing::StartEngine(config);
  EXPECT_TRUE(engine.ok()) << engine.status();
  if (!engine.ok()) return run;
  const auto requests = SharedPrefixRequests(8, 37, 12, logits);
  auto first = testing::GenerateAll(**engine, requests);
  auto second = testing::GenerateAll(**engine, requests);  // the cache is warm now
  EXPECT_TRUE(first.ok() && second.ok());
  if (first.ok()) run.first = *first;
  if (second.ok()) run.second = *second;
  run.status = (*engine)->Status();
  return run;
}

TEST(PrefixCacheTest, TheTrainedModelsGreedyTokensAreTheSameWithAndWithoutTheCache) {
  const std::string model = testing::SourceDir() + "/models/war-and-peace/v2";
  if (!std::filesystem::exists(model + "/config.json")) GTEST_SKIP() << "absent: " << model;
  const Waves off = Generate(model, false, false);
  const Waves on = Generate(model, true, false);
  ASSERT_EQ(on.first.size(), 8u);
  ASSERT_EQ(off.first.size(), 8u);
  for (size_t i = 0; i < 8; ++i) {
    EXPECT_EQ(on.first[i].token_ids, off.first[i].token_ids) << i;
    EXPECT_EQ(on.second[i].token_ids, off.second[i].token_ids) << i;
  }
  EXPECT_EQ(off.status.prefix_cache_hits, 0);
  // The second wave found the 36-token shared prefix (9 blocks of 4) for each of 8 requests,
  // and the first wave's later requests found what its first ones published.
  EXPECT_GE(on.status.prefix_cache_hits, 8 * 36);
  EXPECT_GT(on.status.prefix_cache_queries, on.status.prefix_cache_hits);
}

TEST(PrefixCacheTest, LogitsStayWithinTheReferenceToleranceWithTheCache) {
  const std::string model = testing::SourceDir() + "/tests/data/models/qwen3-f32";
  const Waves off = Generate(model, false, true);
  const Waves on = Generate(model, true, true);
  ASSERT_EQ(on.second.size(), 8u);
  float worst = 0;
  for (size_t i = 0; i < 8; ++i) {
    ASSERT_EQ(on.second[i].logits.size(), off.second[i].logits.size());
    for (size_t t = 0; t < on.second[i].logits.size(); ++t) {
      for (size_t v = 0; v < on.second[i].logits[t].size(); ++v) {
        worst = std::max(worst, std::fabs(on.second[i].logits[t][v] - off.second[i].logits[t][v]));
      }
    }
  }
  EXPECT_LE(worst, 1e-4f);
  EXPECT_GT(on.status.prefix_cache_hits, 0);
}

}  // namespace
}  // namespace loom
