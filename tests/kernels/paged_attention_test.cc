#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "kernels/kernels.h"
#include "tests/kernels/kernel_test_util.h"

namespace loom::kernels {
namespace {

struct SeqSpec {
  int32_t context;  // tokens in the cache after this step
  int32_t queries;  // new tokens this step (the last `queries` positions)
};

// Dense causal attention from contiguous per-sequence K/V, in double; with window > 0 a query
// at p sees only keys (p - window, p].
void DenseReference(const std::vector<float>& q, int64_t q_row_stride, int64_t hq, int64_t hk,
                    int64_t d, const std::vector<std::vector<float>>& keys,
                    const std::vector<std::vector<float>>& values, const std::vector<SeqSpec>& seqs,
                    float scale, int64_t window, std::vector<double>& out) {
  int64_t row = 0;
  const int64_t group = hq / hk;
  for (size_t s = 0; s < seqs.size(); ++s) {
    for (int32_t i = 0; i < seqs[s].queries; ++i, ++row) {
      const int64_t pos = seqs[s].context - seqs[s].queries + i;
      for (int64_t h = 0; h < hq; ++h) {
        const int64_t g = h / group;
        const float* qv = q.data() + row * q_row_stride + h * d;
        std::vector<double> logits(pos + 1, -INFINITY);
        const int64_t first = window > 0 ? std::max<int64_t>(0, pos - window + 1) : 0;
        double mx = -1e300;
        for (int64_t p = first; p <= pos; ++p) {
          double dot = 0;
          for (int64_t j = 0; j < d; ++j)
            dot += static_cast<double>(qv[j]) * keys[s][(p * hk + g) * d + j];
          logits[p] = dot * scale;
          mx = std::max(mx, logits[p]);
        }
        double sum = 0;
        for (double& l : logits) sum += (l = std::exp(l - mx));
        for (int64_t j = 0; j < d; ++j) {
          double acc = 0;
          for (int64_t p = 0; p <= pos; ++p) acc += logits[p] * values[s][(p * hk + g) * d + j];
          out[(row * hq + h) * d + j] = acc / sum;
        }
      }
    }
  }
}

void RunCase(const std::vector<SeqSpec>& seqs, int64_t block_size, int64_t hq, int64_t hk,
             int64_t d, bool strided_q, uint32_t seed, int64_t window = 0) {
  SCOPED_TRACE(::testing::Message()
               << "block_size=" << block_size << " Hq=" << hq << " Hk=" << hk << " D=" << d
               << " strided=" << strided_q << " seqs=" << seqs.size() << " window=" << window);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  // Blocks for every sequence, handed out from a shuffled pool with some spare blocks.
  int64_t needed = 0;
  for (const SeqSpec& s : seqs) needed += (s.context + block_size - 1) / block_size;
  const int64_t num_blocks = needed + 3;
  std::vector<int32_t> pool(num_blocks);
  std::iota(pool.begin(), pool.end(), 0);
  std::shuffle(pool.begin(), pool.end(), rng);
  Tensor k_cache = testing::PoisonedF32({num_blocks, block_size, hk, d});
  Tensor v_cache = testing::PoisonedF32({num_blocks, block_size, hk, d});
  AttentionBatch batch;
  batch.query_start.push_back(0);
  std::vector<std::vector<float>> keys, values;
  size_t next = 0;
  for (const SeqSpec& s : seqs) {
    const int64_t nblocks = (s.context + block_size - 1) / block_size;
    std::vector<int32_t> table(pool.begin() + next, pool.begin() + next + nblocks);
    next += nblocks;
    table.push_back(pool.back());  // a spare entry past the context must be ignored
    keys.emplace_back(s.context * hk * d);
    values.emplace_back(s.context * hk * d);
    for (float& x : keys.back()) x = dist(rng);
    for (float& x : values.back()) x = dist(rng);
    for (int64_t p = 0; p < s.context; ++p) {
      const int64_t slot = table[p / block_size] * block_size + p % block_size;
      std::copy_n(keys.back().data() + p * hk * d, hk * d, k_cache.data<float>() + slot * hk * d);
      std::copy_n(values.back().data() + p * hk * d, hk * d, v_cache.data<float>() + slot * hk * d);
    }
    batch.block_tables.push_back(table);
    batch.context_len.push_back(s.context);
    batch.query_start.push_back(batch.query_start.back() + s.queries);
  }
  const int64_t tokens = batch.query_start.back();
  // q is either contiguous or the first Hq heads of a fused [T, Hq + 2Hk, D] qkv row.
  const int64_t row_heads = strided_q ? hq + 2 * hk : hq;
  Tensor qkv = testing::RandomF32({tokens, row_heads, d}, rng);
  Tensor q = strided_q ? *qkv.Slice(1, 0, hq) : qkv;
  std::vector<float> q_flat(qkv.data<float>(), qkv.data<float>() + qkv.numel());
  Tensor out = testing::PoisonedF32({tokens, hq, d});
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  ASSERT_TRUE(PagedAttention(HostContext(), q, k_cache, v_cache, batch, scale, window, out).ok());
  std::vector<double> want(static_cast<size_t>(tokens * hq * d));
  DenseReference(q_flat, row_heads * d, hq, hk, d, keys, values, seqs, scale, window, want);
  testing::ExpectClose(out.data<float>(), want, 1e-5, 1e-5, "out");
}

TEST(PagedAttentionTest, MixedPrefillAndDecodeAcrossBlockSizesAndGqa) {
  // Fresh prefill, prefill on top of cached context, decode at short and long contexts,
  // a single-token sequence, and lengths that are not multiples of the block size.
  const std::vector<SeqSpec> seqs = {{1, 1}, {7, 7}, {20, 5}, {33, 1}, {130, 1}, {18, 18}};
  uint32_t seed = 100;
  for (int64_t block_size : {1, 4, 16}) {
    for (auto [hq, hk] : std::vector<std::pair<int64_t, int64_t>>{{2, 2}, {4, 2}, {8, 2}}) {
      RunCase(seqs, block_size, hq, hk, 16, /*strided_q=*/false, seed++);
      RunCase(seqs, block_size, hq, hk, 16, /*strided_q=*/true, seed++);
    }
  }
}

TEST(PagedAttentionTest, RealisticHeadDimAndLongDecode) {
  RunCase({{300, 1}, {1, 1}, {65, 3}}, 16, 16, 8, 128, /*strided_q=*/true, 7);
  RunCase({{77, 77}}, 16, 4, 1, 64, /*strided_q=*/false, 8);
  RunCase({{5, 2}}, 4, 3, 3, 12, /*strided_q=*/true, 9);  // head_dim not a multiple of 8
}

TEST(PagedAttentionTest, SlidingWindowSeesOnlyTheLastWindowPositions) {
  // Windows shorter than, equal to and longer than the contexts; prefill rows whose windows
  // start mid-block and past the first chunk; decode far past the window.
  const std::vector<SeqSpec> seqs = {{1, 1}, {7, 7}, {40, 40}, {33, 1}, {130, 1}, {90, 20}};
  uint32_t seed = 200;
  for (int64_t window : {1, 5, 16, 64, 200}) {
    for (int64_t block_size : {1, 16}) {
      RunCase(seqs, block_size, 4, 2, 16, /*strided_q=*/true, seed++, window);
    }
  }
}

TEST(PagedAttentionTest, NegativeWindowIsRejected) {
  Tensor q = testing::PoisonedF32({1, 1, 4});
  Tensor cache = testing::PoisonedF32({1, 4, 1, 4});
  Tensor out = testing::PoisonedF32({1, 1, 4});
  AttentionBatch batch{{0, 1}, {1}, {{0}}};
  EXPECT_EQ(PagedAttention(HostContext(), q, cache, cache, batch, 0.5f, -1, out).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(PagedAttentionTest, EmptySequenceInBatchIsFine) {
  RunCase({{4, 0}, {9, 2}, {0, 0}}, 4, 2, 1, 8, false, 10);
}

class PagedAttentionBadBatchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    batch_.query_start = {0, 2, 3};
    batch_.context_len = {5, 3};
    batch_.block_tables = {{0, 1}, {2}};
  }
  absl::StatusCode Run() {
    return PagedAttention(HostContext(), q_, k_cache_, v_cache_, batch_, 0.5f, 0, out_).code();
  }
  Tensor q_ = Tensor::Empty(DType::kF32, {3, 2, 4});
  Tensor k_cache_ = Tensor::Empty(DType::kF32, {3, 4, 1, 4});
  Tensor v_cache_ = Tensor::Empty(DType::kF32, {3, 4, 1, 4});
  Tensor out_ = Tensor::Empty(DType::kF32, {3, 2, 4});
  AttentionBatch batch_;
};

TEST_F(PagedAttentionBadBatchTest, ValidBatchPasses) { EXPECT_EQ(Run(), absl::StatusCode::kOk); }

TEST_F(PagedAttentionBadBatchTest, BlockIdOutOfRange) {
  batch_.block_tables[0][1] = 3;
  EXPECT_EQ(Run(), absl::StatusCode::kInvalidArgument);
  batch_.block_tables[0][1] = -1;
  EXPECT_EQ(Run(), absl::StatusCode::kInvalidArgument);
}

TEST_F(PagedAttentionBadBatchTest, ContextBeyondBlockTable) {
  batch_.context_len[1] = 5;
  EXPECT_EQ(Run(), absl::StatusCode::kInvalidArgument);
}

TEST_F(PagedAttentionBadBatchTest, InconsistentQueryStart) {
  batch_.query_start = {0, 2, 4};  // past the 3 query rows
  EXPECT_EQ(Run(), absl::StatusCode::kInvalidArgument);
  batch_.query_start = {1, 2, 3};
  EXPECT_EQ(Run(), absl::StatusCode::kInvalidArgument);
  batch_.query_start = {0, 3, 2};
  EXPECT_EQ(Run(), absl::StatusCode::kInvalidArgument);
  batch_.query_start = {0, 3};
  EXPECT_EQ(Run(), absl::StatusCode::kInvalidArgument);
}

TEST_F(PagedAttentionBadBatchTest, MoreQueriesThanContext) {
  batch_.context_len[0] = 1;
  EXPECT_EQ(Run(), absl::StatusCode::kInvalidArgument);
}

TEST_F(PagedAttentionBadBatchTest, BadShapes) {
  k_cache_ = Tensor::Empty(DType::kF32, {3, 4, 3, 4});  // 2 query heads over 3 KV heads
  v_cache_ = Tensor::Empty(DType::kF32, {3, 4, 3, 4});
  EXPECT_EQ(Run(), absl::StatusCode::kInvalidArgument);
  SetUp();
  k_cache_ = Tensor::Empty(DType::kF32, {3, 4, 1, 8});
  v_cache_ = Tensor::Empty(DType::kF32, {3, 4, 1, 8});
  EXPECT_EQ(Run(), absl::StatusCode::kInvalidArgument);
  k_cache_ = Tensor::Empty(DType::kF32, {3, 4, 1, 4});
  out_ = Tensor::Empty(DType::kF32, {3, 2, 5});
  EXPECT_EQ(Run(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace loom::kernels
