// Every CPU kernel variant this machine can run (kernels/cpu/cpu_isa.h), pinned in turn, against
// scalar references: Linear with f32, bf16 and f16 weights on both of its paths, and paged
// attention. Variants the CPU (or the build) lacks are skipped with a message naming them.
#include "kernels/cpu/cpu_isa.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "kernels/kernels.h"
#include "tests/kernels/kernel_test_util.h"

namespace loom::kernels {
namespace {

using testing::ExpectClose;

class CpuIsaTest : public ::testing::TestWithParam<CpuIsa> {
 protected:
  void SetUp() override {
    if (!CpuSupports(GetParam())) {
      GTEST_SKIP() << "this CPU or build has no " << CpuIsaName(GetParam())
                   << " kernels (the best it has: "
                   << (DetectedIsa() ? CpuIsaName(*DetectedIsa()) : "none") << ")";
    }
    saved_ = ActiveIsa();
    ASSERT_TRUE(SetActiveIsaForTesting(GetParam()));
  }
  void TearDown() override { SetActiveIsaForTesting(saved_); }

  // Error allowed per unit of Σ|w·x| (inputs in [-1, 1], so at most K). f32 accumulation is
  // good to a few ulps of that; the bf16 variant splits each activation into two bf16 values
  // good to 2^-17 of it (isa_avx512bf16.cc).
  double AbsTolerancePerTerm(DType w) const {
    return GetParam() == CpuIsa::kAvx512Bf16 && w == DType::kBF16 ? 1.0 / (1 << 16) : 2e-7;
  }

 private:
  CpuIsa saved_ = CpuIsa::kAvx2;
};

std::vector<double> LinearReference(const Tensor& x, const Tensor& w) {
  const int64_t m_rows = x.size(0), k_dim = x.size(1), n_rows = w.size(0);
  const Tensor wf = *w.To(DType::kF32);  // widening is exact
  std::vector<double> out(static_cast<size_t>(m_rows * n_rows));
  for (int64_t m = 0; m < m_rows; ++m) {
    for (int64_t n = 0; n < n_rows; ++n) {
      double s = 0;
      for (int64_t k = 0; k < k_dim; ++k) {
        s += static_cast<double>(wf.data<float>()[n * k_dim + k]) * x.data<float>()[m * k_dim + k];
      }
      out[m * n_rows + n] = s;
    }
  }
  return out;
}

// Linear on random [m, k] activations and [n, k] weights of `dtype` against the reference.
void CheckLinear(DType dtype, int64_t m, int64_t n, int64_t k, uint32_t seed,
                 double tolerance_per_term) {
  SCOPED_TRACE(::testing::Message()
               << DTypeName(dtype) << " M=" << m << " N=" << n << " K=" << k);
  std::mt19937 rng(seed);
  Tensor x = testing::RandomF32({m, k}, rng);
  Tensor w = *testing::RandomF32({n, k}, rng).To(dtype);
  Tensor out = testing::PoisonedF32({m, n});
  ASSERT_TRUE(Linear(HostContext(), x, w, nullptr, out).ok());
  ExpectClose(out.data<float>(), LinearReference(x, w), 1e-5,
              tolerance_per_term * static_cast<double>(k), "out");
}

TEST_P(CpuIsaTest, LinearMatchesScalarReference) {
  ASSERT_EQ(ActiveIsa(), GetParam());
  // Row counts of both paths (streaming up to 8 or 16 rows, sgemm above) with every remainder
  // of the 4-row tiles; K and N off every vector width and block (8, 16, 32), and large enough
  // for threads.
  const std::vector<int64_t> rows = {1, 2, 3, 4, 5, 8, 9, 16, 17, 33};
  const std::vector<std::pair<int64_t, int64_t>> shapes = {{1, 1},  {5, 7},     {37, 67},  {9, 31},
                                                           {3, 33}, {301, 129}, {66, 1029}};
  uint32_t seed = 1;
  for (DType dtype : {DType::kF32, DType::kBF16, DType::kF16}) {
    for (int64_t m : rows) {
      for (const auto& [n, k] : shapes) {
        CheckLinear(dtype, m, n, k, seed++, AbsTolerancePerTerm(dtype));
      }
    }
  }
  // Prefill row counts: the AMX kernel makes passes of 80 activation rows, in pairs of 5-row
  // tiles, over pairs of 16-row weight groups; both threads, and remainders of all of them.
  for (DType dtype : {DType::kBF16, DType::kF16, DType::kF32}) {
    for (int64_t m : {64, 65, 300, 512}) {
      CheckLinear(dtype, m, 200, 333, seed++, AbsTolerancePerTerm(dtype));
    }
  }
}

// One decode or prefill step over a paged cache, against dense softmax attention in double.
void CheckAttention(int64_t head_dim, int64_t q_heads, int64_t kv_heads,
                    const std::vector<std::pair<int32_t, int32_t>>& seqs, uint32_t seed) {
  SCOPED_TRACE(::testing::Message() << "D=" << head_dim << " Hq=" << q_heads << " Hk=" << kv_heads);
  constexpr int64_t kBlock = 16;
  std::mt19937 rng(seed);
  AttentionBatch batch;
  batch.query_start.push_back(0);
  int32_t next_block = 0;
  for (const auto& [context, queries] : seqs) {
    std::vector<int32_t> table((context + kBlock - 1) / kBlock);
    std::iota(table.begin(), table.end(), next_block);
    next_block += static_cast<int32_t>(table.size());
    batch.block_tables.push_back(table);
    batch.context_len.push_back(context);
    batch.query_start.push_back(batch.query_start.back() + queries);
  }
  const int64_t tokens = batch.query_start.back();
  Tensor k_cache = testing::RandomF32({next_block, kBlock, kv_heads, head_dim}, rng);
  Tensor v_cache = testing::RandomF32({next_block, kBlock, kv_heads, head_dim}, rng);
  Tensor q = testing::RandomF32({tokens, q_heads, head_dim}, rng);
  Tensor out = testing::PoisonedF32({tokens, q_heads, head_dim});
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  ASSERT_TRUE(PagedAttention(HostContext(), q, k_cache, v_cache, batch, scale, 0, out).ok());

  // Blocks are consecutive per sequence, so a sequence's keys are one contiguous run.
  std::vector<double> want(static_cast<size_t>(out.numel()));
  const float* kp = k_cache.data<float>();
  const float* vp = v_cache.data<float>();
  for (size_t s = 0; s < seqs.size(); ++s) {
    const int64_t first_slot = int64_t{batch.block_tables[s][0]} * kBlock;
    for (int32_t row = batch.query_start[s]; row < batch.query_start[s + 1]; ++row) {
      const int64_t position = seqs[s].first - (batch.query_start[s + 1] - row);
      for (int64_t h = 0; h < q_heads; ++h) {
        const int64_t g = h / (q_heads / kv_heads);
        const float* qh = q.data<float>() + (row * q_heads + h) * head_dim;
        std::vector<double> p(static_cast<size_t>(position + 1));
        double max = -INFINITY, sum = 0;
        for (int64_t t = 0; t <= position; ++t) {
          const float* key = kp + ((first_slot + t) * kv_heads + g) * head_dim;
          double dot = 0;
          for (int64_t i = 0; i < head_dim; ++i) dot += static_cast<double>(qh[i]) * key[i];
          p[t] = dot * scale;
          max = std::max(max, p[t]);
        }
        for (double& v : p) sum += (v = std::exp(v - max));
        for (int64_t i = 0; i < head_dim; ++i) {
          double acc = 0;
          for (int64_t t = 0; t <= position; ++t) {
            acc += p[t] * vp[((first_slot + t) * kv_heads + g) * head_dim + i];
          }
          want[(row * q_heads + h) * head_dim + i] = acc / sum;
        }
      }
    }
  }
  ExpectClose(out.data<float>(), want, 1e-5, 1e-5, "attention");
}

TEST_P(CpuIsaTest, PagedAttentionMatchesScalarReference) {
  ASSERT_EQ(ActiveIsa(), GetParam());
  // Decode at contexts across the 64-key chunks, a prefill, and head sizes off the vector widths.
  const std::vector<std::pair<int32_t, int32_t>> seqs = {{1, 1}, {70, 1}, {130, 1}, {40, 9}};
  uint32_t seed = 100;
  for (int64_t head_dim : {128, 64, 80, 37, 8, 3}) {
    CheckAttention(head_dim, 4, 2, seqs, seed++);
    CheckAttention(head_dim, 3, 3, seqs, seed++);
  }
}

INSTANTIATE_TEST_SUITE_P(Variants, CpuIsaTest,
                         ::testing::Values(CpuIsa::kAvx2, CpuIsa::kAvx512, CpuIsa::kAvx512Bf16,
                                           CpuIsa::kAmx),
                         [](const ::testing::TestParamInfo<CpuIsa>& info) {
                           return std::string(CpuIsaName(info.param));
                         });

TEST(CpuIsaChoiceTest, NamesRoundTripAndTheChoiceIsSupported) {
  for (CpuIsa isa : {CpuIsa::kAvx2, CpuIsa::kAvx512, CpuIsa::kAvx512Bf16, CpuIsa::kAmx}) {
    EXPECT_EQ(ParseCpuIsa(CpuIsaName(isa)), isa);
  }
  EXPECT_FALSE(ParseCpuIsa("avx1024").has_value());
  ASSERT_TRUE(DetectedIsa().has_value()) << "these tests need the AVX2 baseline";
  EXPECT_TRUE(CpuSupports(CpuIsa::kAvx2));
  EXPECT_TRUE(CpuSupports(DefaultIsa()));
  EXPECT_TRUE(CpuSupports(ActiveIsa()));
  EXPECT_NE(DefaultIsa(), CpuIsa::kAvx512Bf16);
  // Each variant needs what the ones before it need.
  EXPECT_TRUE(!CpuSupports(CpuIsa::kAvx512Bf16) || CpuSupports(CpuIsa::kAvx512));
  EXPECT_TRUE(!CpuSupports(CpuIsa::kAmx) || CpuSupports(CpuIsa::kAvx512Bf16));
  // The tiles are the fastest where the CPU and the OS allow them.
  if (CpuSupports(CpuIsa::kAmx)) EXPECT_EQ(DefaultIsa(), CpuIsa::kAmx);
  EXPECT_EQ(HostContext().Description(), std::string("cpu (") + CpuIsaName(ActiveIsa()) + ")");
}

TEST(CpuIsaChoiceTest, CheckHostCpuRefusesAnUnknownOrUnsupportedVariant) {
  const char* saved = std::getenv("LOOM_CPU_ISA");
  const std::string saved_value = saved != nullptr ? saved : "";
  const CpuIsa saved_isa = ActiveIsa();
  setenv("LOOM_CPU_ISA", "sse2", 1);
  EXPECT_EQ(CheckHostCpu().code(), absl::StatusCode::kInvalidArgument);
  setenv("LOOM_CPU_ISA", "avx2", 1);
  EXPECT_TRUE(CheckHostCpu().ok());
  for (CpuIsa isa : {CpuIsa::kAvx512, CpuIsa::kAvx512Bf16, CpuIsa::kAmx}) {
    setenv("LOOM_CPU_ISA", CpuIsaName(isa), 1);
    EXPECT_EQ(CheckHostCpu().ok(), CpuSupports(isa)) << CpuIsaName(isa);
  }
  // Not even a test can make the kernels run a variant the CPU lacks.
  EXPECT_EQ(SetActiveIsaForTesting(CpuIsa::kAvx512Bf16), CpuSupports(CpuIsa::kAvx512Bf16));
  EXPECT_TRUE(SetActiveIsaForTesting(saved_isa));
  if (saved != nullptr) {
    setenv("LOOM_CPU_ISA", saved_value.c_str(), 1);
  } else {
    unsetenv("LOOM_CPU_ISA");
  }
}

}  // namespace
}  // namespace loom::kernels
