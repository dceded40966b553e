#include "kernels/sampling.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <set>
#include <vector>

namespace loom::kernels {
namespace {

Tensor Logits(const std::vector<std::vector<float>>& rows) {
  Tensor t = Tensor::Empty(
      DType::kF32, {static_cast<int64_t>(rows.size()), static_cast<int64_t>(rows[0].size())});
  for (size_t b = 0; b < rows.size(); ++b) {
    for (size_t i = 0; i < rows[b].size(); ++i)
      t.data<float>()[b * rows[b].size() + i] = rows[b][i];
  }
  return t;
}

std::vector<float> RandomRow(int64_t vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 3.0f);
  std::vector<float> row(vocab);
  for (float& x : row) x = dist(rng);
  return row;
}

int32_t SampleOne(const std::vector<float>& row, const SamplingParams& p, uint64_t step) {
  auto tokens = Sample(HostContext(), Logits({row}), {p}, {step});
  EXPECT_TRUE(tokens.ok()) << tokens.status();
  return tokens.ok() ? (*tokens)[0] : -1;
}

TEST(SampleTest, GreedyIsArgmaxWithLowestIdOnTies) {
  SamplingParams greedy;
  auto tokens = Sample(HostContext(),
                       Logits({{0.1f, 3.0f, -1.0f, 3.0f},
                               {5.0f, 5.0f, 5.0f, 5.0f},
                               {-std::numeric_limits<float>::infinity(), -2.0f, -1.0f, -1.5f}}),
                       {greedy, greedy, greedy}, {0, 0, 0});
  ASSERT_TRUE(tokens.ok());
  EXPECT_EQ(*tokens, (std::vector<int32_t>{1, 0, 2}));
}

TEST(SampleTest, SameSeedSameTokensDifferentSeedsDiffer) {
  const std::vector<float> row = RandomRow(1000, 1);
  SamplingParams a{.temperature = 1.0f, .seed = 42};
  SamplingParams b{.temperature = 1.0f, .seed = 43};
  std::vector<int32_t> first, again, other;
  for (uint64_t step = 0; step < 64; ++step) {
    first.push_back(SampleOne(row, a, step));
    again.push_back(SampleOne(row, a, step));
    other.push_back(SampleOne(row, b, step));
  }
  EXPECT_EQ(first, again);
  EXPECT_NE(first, other);
  // Not stuck on one token either.
  EXPECT_GT(std::set<int32_t>(first.begin(), first.end()).size(), 10u);
}

TEST(SampleTest, DrawDependsOnlyOnSeedAndStepNotOnBatch) {
  const std::vector<float> row = RandomRow(500, 2);
  const std::vector<float> noise = RandomRow(500, 3);
  SamplingParams p{.temperature = 0.8f, .top_k = 50, .top_p = 0.9f, .seed = 7};
  SamplingParams q{.temperature = 1.3f, .seed = 99};
  for (uint64_t step = 0; step < 20; ++step) {
    auto batched =
        Sample(HostContext(), Logits({noise, row, noise}), {q, p, q}, {step + 5, step, 3});
    ASSERT_TRUE(batched.ok());
    EXPECT_EQ((*batched)[1], SampleOne(row, p, step));
  }
}

TEST(SampleTest, TopKOneAndTinyTopPAreGreedy) {
  for (uint32_t seed = 0; seed < 20; ++seed) {
    std::vector<float> row = RandomRow(3000, seed);
    row[17] = row[2900] = 100.0f;  // a tie for the max: the lower id must win
    const int32_t greedy = SampleOne(row, SamplingParams{}, 0);
    EXPECT_EQ(greedy, 17);
    SamplingParams top1{.temperature = 2.0f, .top_k = 1, .seed = seed};
    SamplingParams tiny_p{.temperature = 2.0f, .top_p = 1e-6f, .seed = seed};
    for (uint64_t step = 0; step < 5; ++step) {
      EXPECT_EQ(SampleOne(row, top1, step), greedy);
      EXPECT_EQ(SampleOne(row, tiny_p, step), greedy);
    }
  }
}

TEST(SampleTest, TopKAndTopPOnlyReturnKeptTokens) {
  // Probabilities ∝ exp(logit): 0.5, 0.25, 0.125, 0.0625, ... with temperature 1.
  std::vector<float> row(12);
  for (int i = 0; i < 12; ++i) row[i] = -static_cast<float>(i) * std::log(2.0f);
  for (uint64_t step = 0; step < 400; ++step) {
    EXPECT_LT(SampleOne(row, {.temperature = 1.0f, .top_k = 3, .seed = 5}, step), 3);
    // 0.5 + 0.25 = 0.75 >= 0.7: the nucleus is {0, 1}.
    EXPECT_LT(SampleOne(row, {.temperature = 1.0f, .top_p = 0.7f, .seed = 6}, step), 2);
    // With top_k = 2 and top_p = 0.6 the nucleus of the renormalised {2/3, 1/3} is {0}.
    EXPECT_EQ(SampleOne(row, {.temperature = 1.0f, .top_k = 2, .top_p = 0.6f, .seed = 6}, step), 0);
  }
}

TEST(SampleTest, TemperatureSamplingMatchesDistribution) {
  // softmax([log 4, log 3, log 2, log 1] / 1) = [0.4, 0.3, 0.2, 0.1]; at temperature 2 the
  // probabilities become ∝ sqrt: [2, 1.732, 1.414, 1] / 6.146.
  const std::vector<float> row = {std::log(4.0f), std::log(3.0f), std::log(2.0f), 0.0f};
  for (float temperature : {1.0f, 2.0f}) {
    std::vector<double> want = {4, 3, 2, 1};
    double total = 0;
    for (double& w : want) total += (w = std::pow(w, 1.0 / temperature));
    std::vector<int> counts(4, 0);
    const int draws = 20000;
    for (int i = 0; i < draws; ++i) {
      ++counts[SampleOne(row, {.temperature = temperature, .seed = 1234}, i)];
    }
    for (int t = 0; t < 4; ++t) {
      // Binomial σ ≤ sqrt(0.25 / 20000) ≈ 0.0035; 0.015 is > 4σ.
      EXPECT_NEAR(counts[t] / static_cast<double>(draws), want[t] / total, 0.015)
          << "temperature " << temperature << " token " << t;
    }
  }
}

TEST(SampleTest, NegativeInfinityLogitsAreNeverSampled) {
  const float ninf = -std::numeric_limits<float>::infinity();
  const std::vector<float> row = {ninf, 0.0f, ninf, 0.5f, ninf};
  for (uint64_t step = 0; step < 200; ++step) {
    const int32_t t = SampleOne(row, {.temperature = 1.0f, .seed = 3}, step);
    EXPECT_TRUE(t == 1 || t == 3) << t;
  }
  auto all_masked = Sample(HostContext(), Logits({{ninf, ninf}}), {{.temperature = 1.0f}}, {0});
  EXPECT_EQ(all_masked.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(SampleTest, RejectsInvalidInput) {
  const Tensor logits = Logits({{1.0f, 2.0f}});
  EXPECT_FALSE(Sample(HostContext(), logits, {{.temperature = -1.0f}}, {0}).ok());
  EXPECT_FALSE(Sample(HostContext(), logits, {{.temperature = std::nanf("")}}, {0}).ok());
  EXPECT_FALSE(
      Sample(HostContext(), logits, {{.temperature = std::numeric_limits<float>::infinity()}}, {0})
          .ok());
  EXPECT_FALSE(Sample(HostContext(), logits, {{.temperature = 1.0f, .top_p = 0.0f}}, {0}).ok());
  EXPECT_FALSE(Sample(HostContext(), logits, {{.temperature = 1.0f, .top_p = 1.5f}}, {0}).ok());
  EXPECT_FALSE(
      Sample(HostContext(), logits, {{.temperature = 1.0f, .top_p = std::nanf("")}}, {0}).ok());
  EXPECT_FALSE(Sample(HostContext(), logits, {{}, {}}, {0, 0}).ok());  // two params for one row
  EXPECT_FALSE(Sample(HostContext(), logits, {{}}, {}).ok());
  EXPECT_FALSE(Sample(HostContext(), Logits({{1.0f, std::nanf("")}}), {{}}, {0}).ok());
  EXPECT_FALSE(Sample(HostContext(), Tensor::Empty(DType::kBF16, {1, 2}), {{}}, {0}).ok());
  EXPECT_TRUE(ValidateSamplingParams({.temperature = 0.7f, .top_k = -1, .top_p = 1.0f}).ok());
  EXPECT_FALSE(ValidateSamplingParams({.top_p = -0.1f}).ok());
}

}  // namespace
}  // namespace loom::kernels
