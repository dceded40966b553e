// Token sampling. Greedy is an argmax with the lowest id winning ties. Otherwise the logits are
// divided by the temperature, cut to the top-k, cut to the top-p nucleus, and one token is drawn
// from the renormalised remainder with a uniform number that depends only on (seed, step) — a
// counter-based generator, so a request's tokens do not depend on its batch neighbours, on
// threads, or on how many draws came before.
#include "kernels/sampling.h"
#include "kernels/cpu/cpu_kernels.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/splitmix64.h"
#include "common/status.h"
#include "kernels/checks.h"

namespace loom::kernels {
namespace {

// Uniform in [0, 1) from 53 well-mixed bits of (seed, step). Two rounds, so that nearby seeds
// and nearby steps land far apart.
double UniformFromCounter(uint64_t seed, uint64_t step) {
  const uint64_t h = SplitMix64(SplitMix64(seed) ^ (step * 0xd1b54a32d192ed03ull));
  return static_cast<double>(h >> 11) * 0x1.0p-53;
}

int32_t Argmax(const float* logits, int64_t vocab) {
  int64_t best = 0;
  for (int64_t i = 1; i < vocab; ++i) {
    if (logits[i] > logits[best]) best = i;  // strict: the lowest id keeps a tie
  }
  return static_cast<int32_t>(best);
}

// Ranks candidates by scaled logit, highest first, lowest id first among equals: a strict total
// order, so every cut and every walk below is deterministic.
struct ByScoreThenId {
  const float* z;
  bool operator()(int32_t a, int32_t b) const { return z[a] > z[b] || (z[a] == z[b] && a < b); }
};

absl::StatusOr<int32_t> SampleRow(const float* logits, int64_t vocab, const SamplingParams& p,
                                  uint64_t step) {
  if (p.temperature == 0.0f) return Argmax(logits, vocab);
  const int32_t top = Argmax(logits, vocab);
  if (logits[top] == std::numeric_limits<float>::infinity()) return top;  // all mass there
  if (logits[top] == -std::numeric_limits<float>::infinity()) {
    return absl::InvalidArgumentError("Sample: every logit is -inf");
  }
  std::vector<float> z(static_cast<size_t>(vocab));
  for (int64_t i = 0; i < vocab; ++i) z[i] = logits[i] / p.temperature;
  const ByScoreThenId order{z.data()};
  // A huge logit over a tiny temperature can overflow to +inf; the largest one then takes it all.
  if (std::isinf(z[top]) && z[top] > 0) return top;

  std::vector<int32_t> ids(static_cast<size_t>(vocab));
  std::iota(ids.begin(), ids.end(), 0);
  int64_t kept = vocab;
  bool sorted = false;  // whether ids[0, kept) is in `order`
  if (p.top_k > 0 && p.top_k < vocab) {
    kept = p.top_k;
    std::nth_element(ids.begin(), ids.begin() + (kept - 1), ids.end(), order);
    std::sort(ids.begin(), ids.begin() + kept, order);
    sorted = true;
  }
  // exp(z - max) over the kept set; the max is z[top], which top-k always keeps.
  const double zmax = z[top];
  std::vector<double> w(static_cast<size_t>(kept));
  double total = 0.0;
  for (int64_t i = 0; i < kept; ++i) {
    w[i] = std::exp(static_cast<double>(z[ids[i]]) - zmax);
    total += w[i];
  }
  if (p.top_p < 1.0f) {
    // The nucleus is usually a small head of the distribution: sort a growing prefix until its
    // mass reaches top_p instead of sorting the whole vocabulary.
    const double target = static_cast<double>(p.top_p) * total;
    int64_t prefix = std::min<int64_t>(kept, 64);
    while (true) {
      if (!sorted) {
        std::partial_sort(ids.begin(), ids.begin() + prefix, ids.begin() + kept, order);
      }
      double mass = 0.0;
      int64_t cut = -1;
      for (int64_t i = 0; i < prefix; ++i) {
        mass += std::exp(static_cast<double>(z[ids[i]]) - zmax);
        if (mass >= target) {
          cut = i + 1;
          break;
        }
      }
      if (cut > 0 || prefix == kept) {
        kept = cut > 0 ? cut : kept;
        break;
      }
      prefix = std::min(kept, prefix * 4);
    }
    total = 0.0;
    for (int64_t i = 0; i < kept; ++i) {
      w[i] = std::exp(static_cast<double>(z[ids[i]]) - zmax);
      total += w[i];
    }
  }
  const double u = UniformFromCounter(p.seed, step) * total;
  double cumulative = 0.0;
  for (int64_t i = 0; i < kept; ++i) {
    cumulative += w[i];
    if (u < cumulative) return ids[i];
  }
  // Rounding can leave u a hair above the last partial sum; the last kept token with weight
  // takes it.
  for (int64_t i = kept - 1; i >= 0; --i) {
    if (w[i] > 0.0) return ids[i];
  }
  return top;
}

}  // namespace

absl::StatusOr<std::vector<int32_t>> cpu::Sample(const Tensor& logits,
                                            const std::vector<SamplingParams>& params,
                                            const std::vector<uint64_t>& step) {
  LOOM_RETURN_IF_ERROR(internal::CheckTensor("Sample", "logits", logits, DType::kF32, 2, true));
  const int64_t batch = logits.size(0), vocab = logits.size(1);
  if (static_cast<int64_t>(params.size()) != batch || static_cast<int64_t>(step.size()) != batch) {
    return absl::InvalidArgumentError(absl::StrCat("Sample: ", batch, " rows of logits but ",
                                                   params.size(), " params and ", step.size(),
                                                   " steps"));
  }
  if (batch > 0 && vocab == 0) return absl::InvalidArgumentError("Sample: empty vocabulary");
  const float* base = logits.data<float>();
  for (int64_t b = 0; b < batch; ++b) {
    LOOM_RETURN_IF_ERROR(ValidateSamplingParams(params[b]));
    const float* row = base + b * vocab;
    for (int64_t i = 0; i < vocab; ++i) {
      if (std::isnan(row[i])) {
        return absl::InvalidArgumentError(
            absl::StrCat("Sample: logit ", i, " of row ", b, " is NaN"));
      }
    }
  }
  std::vector<int32_t> tokens(static_cast<size_t>(batch));
  std::vector<absl::Status> errors(static_cast<size_t>(batch));
#pragma omp parallel for schedule(dynamic, 1) if (batch > 1)
  for (int64_t b = 0; b < batch; ++b) {
    absl::StatusOr<int32_t> token = SampleRow(base + b * vocab, vocab, params[b], step[b]);
    if (token.ok()) {
      tokens[b] = *token;
    } else {
      errors[b] = absl::Status(token.status().code(),
                               absl::StrCat(token.status().message(), " (row ", b, ")"));
    }
  }
  for (const absl::Status& e : errors) LOOM_RETURN_IF_ERROR(e);
  return tokens;
}

}  // namespace loom::kernels
