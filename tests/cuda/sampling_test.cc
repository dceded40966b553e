#include "kernels/sampling.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

#include "kernels/cuda/cuda_kernels.h"
#include "tests/cuda/cuda_test_util.h"

namespace loom::kernels::cuda {
namespace {

using testing::CudaTest;

// The probability of each token under the CPU sampler's rules, in double: scale by the
// temperature, keep the top-k and then the top-p prefix in (score desc, id asc) order.
std::vector<double> Expected(const std::vector<float>& logits, const SamplingParams& p) {
  const int64_t vocab = static_cast<int64_t>(logits.size());
  std::vector<float> z(vocab);
  for (int64_t i = 0; i < vocab; ++i) z[i] = logits[i] / p.temperature;
  std::vector<int32_t> ids(vocab);
  std::iota(ids.begin(), ids.end(), 0);
  std::stable_sort(ids.begin(), ids.end(), [&](int32_t a, int32_t b) { return z[a] > z[b]; });
  int64_t kept = p.top_k > 0 && p.top_k < vocab ? p.top_k : vocab;
  const double zmax = z[ids[0]];
  double total = 0;
  for (int64_t i = 0; i < kept; ++i) total += std::exp(static_cast<double>(z[ids[i]]) - zmax);
  if (p.top_p < 1.0f) {
    double mass = 0;
    for (int64_t i = 0; i < kept; ++i) {
      mass += std::exp(static_cast<double>(z[ids[i]]) - zmax);
      if (mass >= p.top_p * total) {
        kept = i + 1;
        break;
      }
    }
  }
  std::vector<double> prob(vocab, 0.0);
  double sum = 0;
  for (int64_t i = 0; i < kept; ++i) sum += std::exp(static_cast<double>(z[ids[i]]) - zmax);
  for (int64_t i = 0; i < kept; ++i) {
    prob[ids[i]] = std::exp(static_cast<double>(z[ids[i]]) - zmax) / sum;
  }
  return prob;
}

class CudaSamplingTest : public CudaTest {
 protected:
  // Samples every row of `logits` [B, V] on the device.
  std::vector<int32_t> Run(const Tensor& logits, const std::vector<SamplingParams>& params,
                           const std::vector<uint64_t>& steps) {
    Tensor device = ToDevice(logits);
    absl::StatusOr<std::vector<int32_t>> tokens = Sample(ctx(), device, params, steps);
    EXPECT_TRUE(tokens.ok()) << tokens.status();
    return tokens.ok() ? *tokens : std::vector<int32_t>();
  }

  // `rows` copies of one row of logits.
  static Tensor Repeat(const std::vector<float>& row, int64_t rows) {
    const int64_t vocab = static_cast<int64_t>(row.size());
    Tensor t = Tensor::Empty(DType::kF32, {rows, vocab});
    for (int64_t r = 0; r < rows; ++r)
      std::copy(row.begin(), row.end(), t.data<float>() + r * vocab);
    return t;
  }
};

TEST_F(CudaSamplingTest, GreedyMatchesTheCpuIncludingTies) {
  std::mt19937 rng(50);
  for (int64_t vocab : {1, 5, 1000, 151936}) {
    SCOPED_TRACE(::testing::Message() << "V=" << vocab);
    const int64_t rows = 7;
    Tensor logits = testing::RandomF32({rows, vocab}, rng, -10.0f, 10.0f);
    // Row 1: a tie for the max, the lowest id must win. Row 2: everything equal. Row 3: -inf.
    if (vocab > 3) {
      logits.data<float>()[vocab + 3] = 20.0f;
      logits.data<float>()[vocab + vocab - 1] = 20.0f;
    }
    std::fill_n(logits.data<float>() + 2 * vocab, vocab, 0.5f);
    std::fill_n(logits.data<float>() + 3 * vocab, vocab, -std::numeric_limits<float>::infinity());
    std::vector<SamplingParams> params(rows);
    std::vector<uint64_t> steps(rows, 0);
    absl::StatusOr<std::vector<int32_t>> want =
        kernels::Sample(kernels::HostContext(), logits, params, steps);
    ASSERT_TRUE(want.ok());
    EXPECT_EQ(Run(logits, params, steps), *want);
  }
}

TEST_F(CudaSamplingTest, SameSeedAndStepSameTokenWhateverTheBatch) {
  std::mt19937 rng(51);
  const int64_t vocab = 5000;
  Tensor logits = testing::RandomF32({8, vocab}, rng, -3.0f, 3.0f);
  std::vector<SamplingParams> params(8);
  std::vector<uint64_t> steps(8);
  for (int r = 0; r < 8; ++r) {
    params[r] = SamplingParams{0.8f, r % 2 == 0 ? 50 : 0, r % 3 == 0 ? 0.9f : 1.0f,
                               static_cast<uint64_t>(1000 + r)};
    steps[r] = static_cast<uint64_t>(r * 7);
  }
  const std::vector<int32_t> first = Run(logits, params, steps);
  EXPECT_EQ(Run(logits, params, steps), first) << "same inputs, same tokens";
  // Each row alone, and the batch reversed.
  for (int r = 0; r < 8; ++r) {
    Tensor row = Tensor::Empty(DType::kF32, {1, vocab});
    std::copy_n(logits.data<float>() + r * vocab, vocab, row.data<float>());
    EXPECT_EQ(Run(row, {params[r]}, {steps[r]}), std::vector<int32_t>{first[r]}) << "row " << r;
  }
}

TEST_F(CudaSamplingTest, TokensFollowTheCpuDistribution) {
  // A small vocabulary with known probabilities, many draws (steps) of the same row.
  const std::vector<float> row = {
      2.0f, 1.0f, 1.0f, 0.5f, -1.0f, 3.0f, 0.0f, 1.0f, -std::numeric_limits<float>::infinity(),
      2.0f};
  const int64_t draws = 20000;
  const std::vector<SamplingParams> cases = {
      {1.0f, 0, 1.0f, 7},  {0.7f, 0, 1.0f, 8},  {1.0f, 3, 1.0f, 9},  {1.0f, 0, 0.6f, 10},
      {1.3f, 4, 0.8f, 11}, {1.0f, 2, 1.0f, 12}, {2.0f, 0, 0.95f, 13}};
  Tensor logits = Repeat(row, draws);
  for (const SamplingParams& p : cases) {
    SCOPED_TRACE(::testing::Message()
                 << "T=" << p.temperature << " k=" << p.top_k << " p=" << p.top_p);
    std::vector<uint64_t> steps(draws);
    std::iota(steps.begin(), steps.end(), 0);
    const std::vector<int32_t> tokens = Run(logits, std::vector<SamplingParams>(draws, p), steps);
    ASSERT_EQ(static_cast<int64_t>(tokens.size()), draws);
    const std::vector<double> prob = Expected(row, p);
    std::vector<int64_t> count(row.size(), 0);
    for (int32_t t : tokens) {
      ASSERT_GE(t, 0);
      ASSERT_LT(t, static_cast<int32_t>(row.size()));
      ++count[t];
    }
    for (size_t i = 0; i < row.size(); ++i) {
      const double freq = static_cast<double>(count[i]) / draws;
      const double sigma = std::sqrt(prob[i] * (1 - prob[i]) / draws);
      if (prob[i] == 0) {
        EXPECT_EQ(count[i], 0) << "token " << i << " is outside the kept set";
      } else {
        EXPECT_NEAR(freq, prob[i], 5 * sigma + 1e-3) << "token " << i;
      }
    }
  }
}

TEST_F(CudaSamplingTest, WithoutCutsTheDrawIsTheCpusDraw) {
  // No top-k or top-p: both walk the vocabulary in id order with the same uniform number, so
  // only rounding at a boundary may part them.
  std::mt19937 rng(52);
  const int64_t rows = 2000, vocab = 300;
  Tensor logits = testing::RandomF32({rows, vocab}, rng, -2.0f, 2.0f);
  std::vector<SamplingParams> params(rows, SamplingParams{0.9f, 0, 1.0f, 0});
  std::vector<uint64_t> steps(rows);
  for (int64_t r = 0; r < rows; ++r) {
    params[r].seed = static_cast<uint64_t>(r) * 31 + 5;
    steps[r] = static_cast<uint64_t>(r);
  }
  absl::StatusOr<std::vector<int32_t>> want =
      kernels::Sample(kernels::HostContext(), logits, params, steps);
  ASSERT_TRUE(want.ok());
  const std::vector<int32_t> got = Run(logits, params, steps);
  ASSERT_EQ(got.size(), want->size());
  int64_t same = 0;
  for (size_t i = 0; i < got.size(); ++i) same += got[i] == (*want)[i];
  EXPECT_GE(same, rows * 99 / 100);
}

TEST_F(CudaSamplingTest, TopKOfOneAndTopPOfTinyAreGreedy) {
  std::mt19937 rng(53);
  const int64_t rows = 16, vocab = 151936;
  Tensor logits = testing::RandomF32({rows, vocab}, rng, -5.0f, 5.0f);
  std::vector<SamplingParams> greedy(rows), top1(rows), nucleus(rows);
  std::vector<uint64_t> steps(rows);
  for (int64_t r = 0; r < rows; ++r) {
    top1[r] = SamplingParams{1.0f, 1, 1.0f, static_cast<uint64_t>(r)};
    nucleus[r] = SamplingParams{1.0f, 0, 1e-6f, static_cast<uint64_t>(r)};
    steps[r] = static_cast<uint64_t>(r);
  }
  const std::vector<int32_t> want = Run(logits, greedy, steps);
  EXPECT_EQ(Run(logits, top1, steps), want);
  EXPECT_EQ(Run(logits, nucleus, steps), want);
}

TEST_F(CudaSamplingTest, LargeCutsStayInsideTheKeptSet) {
  // Top-k and top-p that keep thousands of tokens of a large vocabulary.
  std::mt19937 rng(54);
  const int64_t rows = 32, vocab = 151936;
  Tensor logits = testing::RandomF32({rows, vocab}, rng, -4.0f, 4.0f);
  std::vector<SamplingParams> params(rows);
  std::vector<uint64_t> steps(rows);
  for (int64_t r = 0; r < rows; ++r) {
    params[r] = SamplingParams{0.9f, r % 2 == 0 ? 20000 : 40, r % 4 < 2 ? 0.95f : 1.0f,
                               static_cast<uint64_t>(r + 77)};
    steps[r] = 3;
  }
  const std::vector<int32_t> tokens = Run(logits, params, steps);
  ASSERT_EQ(static_cast<int64_t>(tokens.size()), rows);
  for (int64_t r = 0; r < rows; ++r) {
    const std::vector<float> row(logits.data<float>() + r * vocab,
                                 logits.data<float>() + (r + 1) * vocab);
    const std::vector<double> prob = Expected(row, params[r]);
    ASSERT_GE(tokens[r], 0);
    ASSERT_LT(tokens[r], vocab);
    EXPECT_GT(prob[tokens[r]], 0.0) << "row " << r << " drew token " << tokens[r];
  }
}

TEST_F(CudaSamplingTest, ExtremeLogits) {
  const float inf = std::numeric_limits<float>::infinity();
  Tensor logits = Repeat({1.0f, inf, 3.0f, inf}, 1);
  EXPECT_EQ(Run(logits, {SamplingParams{1.0f, 0, 1.0f, 1}}, {0}), std::vector<int32_t>{1});
  // A huge logit over a tiny temperature overflows to +inf and takes all the mass.
  Tensor huge = Repeat({1e30f, 0.0f, 1e30f}, 1);
  EXPECT_EQ(Run(huge, {SamplingParams{1e-10f, 0, 1.0f, 1}}, {0}), std::vector<int32_t>{0});
  // Greedy over all -inf is the first id, as on the CPU; sampling over them is an error.
  Tensor none = Repeat({-inf, -inf, -inf}, 1);
  EXPECT_EQ(Run(none, {SamplingParams{}}, {0}), std::vector<int32_t>{0});
  Tensor dnone = ToDevice(none);
  EXPECT_EQ(Sample(ctx(), dnone, {SamplingParams{1.0f, 0, 1.0f, 1}}, {0}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(CudaSamplingTest, RejectsNanLogitsAndBadParams) {
  Tensor logits = Repeat({1.0f, 2.0f, 3.0f}, 2);
  logits.data<float>()[4] = std::numeric_limits<float>::quiet_NaN();
  Tensor device = ToDevice(logits);
  absl::StatusOr<std::vector<int32_t>> tokens =
      Sample(ctx(), device, {SamplingParams{}, SamplingParams{}}, {0, 0});
  EXPECT_EQ(tokens.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(tokens.status().message().find("row 1"), std::string::npos) << tokens.status();
  Tensor fine = ToDevice(Repeat({1.0f, 2.0f}, 1));
  EXPECT_EQ(Sample(ctx(), fine, {SamplingParams{-1.0f, 0, 1.0f, 0}}, {0}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Sample(ctx(), fine, {SamplingParams{1.0f, 0, 0.0f, 0}}, {0}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Sample(ctx(), fine, {SamplingParams{}, SamplingParams{}}, {0, 0}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace loom::kernels::cuda
