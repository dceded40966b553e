#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <utility>
#include <vector>

#include "kernels/cuda/cuda_kernels.h"
#include "kernels/kernels.h"
#include "tests/cuda/cuda_test_util.h"

namespace loom::kernels::cuda {
namespace {

using testing::CudaTest;

struct SeqSpec {
  int32_t context;  // tokens in the cache after this step
  int32_t queries;  // new tokens this step (the last `queries` positions)
};

struct Case {
  std::vector<SeqSpec> seqs;
  int64_t block_size, hq, hk, d;
  bool strided_q;
  DType cache_type = DType::kF32;
  int64_t window = 0;  // sliding window (0 = none)
};

// A batch over a shuffled pool of blocks, with random caches, and q as a contiguous tensor or
// as the first Hq heads of a fused [T, Hq + 2Hk, D] row.
struct Inputs {
  AttentionBatch batch;
  Tensor k_cache, v_cache;  // f32, holding values representable in the case's cache type
  Tensor qkv, q;
};

// `layout_seed` picks the block tables, `value_seed` the contents.
Inputs MakeInputs(const Case& c, uint32_t layout_seed, uint32_t value_seed) {
  std::mt19937 layout(layout_seed), rng(value_seed);
  Inputs in;
  int64_t needed = 0;
  for (const SeqSpec& s : c.seqs) needed += (s.context + c.block_size - 1) / c.block_size;
  const int64_t num_blocks = needed + 3;
  std::vector<int32_t> pool(num_blocks);
  std::iota(pool.begin(), pool.end(), 0);
  std::shuffle(pool.begin(), pool.end(), layout);
  // Unused slots hold large values, so reading one shows up.
  Tensor k = testing::RandomF32({num_blocks, c.block_size, c.hk, c.d}, rng, 50.0f, 60.0f);
  Tensor v = testing::RandomF32({num_blocks, c.block_size, c.hk, c.d}, rng, 50.0f, 60.0f);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  in.batch.query_start.push_back(0);
  size_t next = 0;
  for (const SeqSpec& s : c.seqs) {
    const int64_t nblocks = (s.context + c.block_size - 1) / c.block_size;
    std::vector<int32_t> table(pool.begin() + next, pool.begin() + next + nblocks);
    next += nblocks;
    table.push_back(pool.back());  // a spare entry past the context must be ignored
    for (int64_t p = 0; p < s.context; ++p) {
      const int64_t slot = table[p / c.block_size] * c.block_size + p % c.block_size;
      for (int64_t i = 0; i < c.hk * c.d; ++i) {
        k.data<float>()[slot * c.hk * c.d + i] = dist(rng);
        v.data<float>()[slot * c.hk * c.d + i] = dist(rng);
      }
    }
    in.batch.block_tables.push_back(table);
    in.batch.context_len.push_back(s.context);
    in.batch.query_start.push_back(in.batch.query_start.back() + s.queries);
  }
  in.k_cache = testing::ToF32(testing::RoundTo(k, c.cache_type));
  in.v_cache = testing::ToF32(testing::RoundTo(v, c.cache_type));
  const int64_t tokens = in.batch.query_start.back();
  const int64_t row_heads = c.strided_q ? c.hq + 2 * c.hk : c.hq;
  in.qkv = testing::RandomF32({tokens, row_heads, c.d}, rng);
  in.q = c.strided_q ? *in.qkv.Slice(1, 0, c.hq) : in.qkv;
  return in;
}

class CudaPagedAttentionTest : public CudaTest {
 protected:
  void RunCase(const Case& c, uint32_t seed) {
    SCOPED_TRACE(::testing::Message()
                 << "block_size=" << c.block_size << " Hq=" << c.hq << " Hk=" << c.hk
                 << " D=" << c.d << " strided=" << c.strided_q << " seqs=" << c.seqs.size()
                 << " cache=" << DTypeName(c.cache_type) << " window=" << c.window);
    Inputs in = MakeInputs(c, seed, seed);
    const int64_t tokens = in.batch.query_start.back();
    const float scale = 1.0f / std::sqrt(static_cast<float>(c.d));
    Tensor want = Tensor::Empty(DType::kF32, {tokens, c.hq, c.d});
    ASSERT_TRUE(kernels::PagedAttention(kernels::HostContext(), in.q, in.k_cache, in.v_cache,
                                        in.batch, scale, c.window, want)
                    .ok());

    Tensor dqkv = ToDevice(in.qkv);
    Tensor dq = c.strided_q ? *dqkv.Slice(1, 0, c.hq) : dqkv;
    Tensor dk = ToDevice(testing::RoundTo(in.k_cache, c.cache_type));
    Tensor dv = ToDevice(testing::RoundTo(in.v_cache, c.cache_type));
    Tensor dout = Poisoned(DType::kF32, {tokens, c.hq, c.d});
    const absl::Status status =
        PagedAttention(ctx(), dq, dk, dv, in.batch, scale, c.window, dout);
    ASSERT_TRUE(status.ok()) << status;
    Tensor got = ToHost(dout);
    testing::ExpectClose(got.data<float>(), testing::AsDoubles(want), 5e-5, 5e-5, "out");
  }
};

TEST_F(CudaPagedAttentionTest, MixedPrefillAndDecodeAcrossBlockSizesAndGqa) {
  // Fresh prefill, prefill on top of cached context, decode at short and long contexts, a
  // single-token sequence, and lengths that are not multiples of the block size.
  const std::vector<SeqSpec> seqs = {{1, 1}, {7, 7}, {20, 5}, {33, 1}, {130, 1}, {18, 18}};
  uint32_t seed = 100;
  for (int64_t block_size : {1, 4, 16}) {
    for (auto [hq, hk] : std::vector<std::pair<int64_t, int64_t>>{{2, 2}, {4, 2}, {8, 2}}) {
      for (bool strided : {false, true}) {
        RunCase({seqs, block_size, hq, hk, 16, strided}, seed++);
      }
    }
  }
}

TEST_F(CudaPagedAttentionTest, HeadDimsOnTheVectorAndScalarPaths) {
  // 32·E exactly (vector loads) and in between (per-element loads, idle lanes).
  uint32_t seed = 200;
  for (int64_t d : {8, 12, 32, 64, 80, 96, 128, 256}) {
    RunCase({{{300, 1}, {1, 1}, {65, 3}}, 16, 4, 2, d, /*strided_q=*/true}, seed++);
  }
}

TEST_F(CudaPagedAttentionTest, LargeGroupsSplitIntoHeadChunks) {
  uint32_t seed = 300;
  // Groups of 3 (two rows per tile), 12 (chunks of 8 and 4), 16 and 64 (one row per tile).
  for (auto [hq, hk] :
       std::vector<std::pair<int64_t, int64_t>>{{6, 2}, {12, 1}, {32, 2}, {64, 1}}) {
    RunCase({{{40, 40}, {70, 1}, {9, 3}}, 8, hq, hk, 64, /*strided_q=*/false}, seed++);
  }
}

TEST_F(CudaPagedAttentionTest, BfloatAndHalfCaches) {
  uint32_t seed = 400;
  for (DType type : {DType::kBF16, DType::kF16}) {
    RunCase({{{300, 1}, {1, 1}, {65, 3}, {16, 16}}, 16, 16, 8, 128, true, type}, seed++);
    RunCase({{{77, 77}}, 16, 4, 1, 64, false, type}, seed++);
  }
}

TEST_F(CudaPagedAttentionTest, LongDecodeSplitsTheContextAndMergesExactly) {
  // Few sequences with long contexts: the planner splits keys into partitions (split-K).
  uint32_t seed = 500;
  RunCase({{{3000, 1}}, 16, 16, 8, 128, true, DType::kBF16}, seed++);
  RunCase({{{2048, 1}, {1500, 1}, {700, 1}, {2, 1}}, 16, 8, 8, 64, false}, seed++);
  RunCase({{{1200, 4}}, 32, 4, 4, 128, false}, seed++);
  // One tile of 8 rows at positions 250..257 across the partition boundary at 256: the rows
  // before it see no key of the second partition.
  RunCase({{{258, 8}}, 16, 2, 2, 64, true}, seed++);
}

TEST_F(CudaPagedAttentionTest, SlidingWindowsMatchTheCpu) {
  // Windows inside one chunk, across chunks and partitions (long decode: split-K partitions
  // wholly before the window write empty partials), and longer than every context.
  uint32_t seed = 550;
  for (int64_t window : {1, 16, 100, 4096}) {
    RunCase({{{40, 40}, {130, 1}, {90, 20}}, 16, 4, 2, 64, true, DType::kF32, window}, seed++);
    RunCase({{{3000, 1}, {700, 1}}, 16, 16, 8, 128, true, DType::kBF16, window}, seed++);
  }
}

TEST_F(CudaPagedAttentionTest, EmptySequencesInTheBatchAreFine) {
  RunCase({{{4, 0}, {9, 2}, {0, 0}}, 4, 2, 1, 8, false}, 600);
}

TEST_F(CudaPagedAttentionTest, OnePlanServesSeveralLayers) {
  // Two layers: the same batch and block tables, other caches and queries.
  const Case c{{{50, 1}, {300, 1}, {12, 12}}, 16, 8, 4, 64, true, DType::kBF16};
  std::vector<Inputs> layers = {MakeInputs(c, 700, 1), MakeInputs(c, 700, 2)};
  const float scale = 0.125f;
  AttentionGeometry g;
  g.tokens = layers[0].batch.query_start.back();
  g.q_heads = c.hq;
  g.kv_heads = c.hk;
  g.head_dim = c.d;
  g.num_blocks = layers[0].k_cache.size(0);
  g.block_size = c.block_size;
  g.cache_dtype = c.cache_type;
  absl::StatusOr<PagedAttentionPlan> plan = PlanPagedAttention(ctx(), layers[0].batch, g);
  ASSERT_TRUE(plan.ok()) << plan.status();
  for (Inputs& in : layers) {
    Tensor want = Tensor::Empty(DType::kF32, {g.tokens, c.hq, c.d});
    ASSERT_TRUE(kernels::PagedAttention(kernels::HostContext(), in.q, in.k_cache, in.v_cache,
                                        in.batch, scale, 0, want)
                    .ok());
    Tensor dqkv = ToDevice(in.qkv);
    Tensor dq = *dqkv.Slice(1, 0, c.hq);
    Tensor dk = ToDevice(testing::RoundTo(in.k_cache, c.cache_type));
    Tensor dv = ToDevice(testing::RoundTo(in.v_cache, c.cache_type));
    Tensor dout = Poisoned(DType::kF32, {g.tokens, c.hq, c.d});
    ASSERT_TRUE(PagedAttention(ctx(), dq, dk, dv, *plan, scale, 0, dout).ok());
    Tensor got = ToHost(dout);
    testing::ExpectClose(got.data<float>(), testing::AsDoubles(want), 5e-5, 5e-5, "out");
  }
  // A tensor of another shape than the plan's is refused.
  Tensor dq = Poisoned(DType::kF32, {g.tokens, c.hq, 32});
  Tensor dk = Poisoned(DType::kBF16, {g.num_blocks, 16, 4, 32});
  Tensor dout = Poisoned(DType::kF32, {g.tokens, c.hq, 32});
  EXPECT_EQ(PagedAttention(ctx(), dq, dk, dk, *plan, scale, 0, dout).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(CudaPagedAttentionTest, RejectsWhatTheCpuRejects) {
  AttentionBatch batch;
  batch.query_start = {0, 2, 3};
  batch.context_len = {5, 3};
  batch.block_tables = {{0, 1}, {2}};
  Tensor q = Poisoned(DType::kF32, {3, 2, 4}), out = Poisoned(DType::kF32, {3, 2, 4});
  Tensor k = Poisoned(DType::kF32, {3, 4, 1, 4}), v = Poisoned(DType::kF32, {3, 4, 1, 4});
  batch.block_tables[0][1] = 3;
  EXPECT_EQ(PagedAttention(ctx(), q, k, v, batch, 0.5f, 0, out).code(),
            absl::StatusCode::kInvalidArgument);
  batch.block_tables[0][1] = 1;
  Tensor v_half = Poisoned(DType::kF16, {3, 4, 1, 4});
  EXPECT_EQ(PagedAttention(ctx(), q, k, v_half, batch, 0.5f, 0, out).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(PagedAttention(ctx(), q, k, v, batch, NAN, 0, out).code(),
            absl::StatusCode::kInvalidArgument);
  Tensor q_wide = Poisoned(DType::kF32, {3, 2, 300}), out_wide = Poisoned(DType::kF32, {3, 2, 300});
  Tensor k_wide = Poisoned(DType::kF32, {3, 4, 1, 300});
  EXPECT_EQ(PagedAttention(ctx(), q_wide, k_wide, k_wide, batch, 0.5f, 0, out_wide).code(),
            absl::StatusCode::kInvalidArgument)
      << "head_dim over 256";
}

}  // namespace
}  // namespace loom::kernels::cuda
