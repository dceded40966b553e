// The CUDA attention planner is host code: these tests run on machines without a GPU.
#include "kernels/cuda/attention_plan.h"

#include <gtest/gtest.h>

#include <vector>

#include "kernels/cuda/launch.h"

namespace loom::kernels::cuda {
namespace {

using internal::kAttentionChunk;
using internal::kAttentionMaxQueries;
using internal::kTileFields;

AttentionBatch Batch(const std::vector<std::pair<int32_t, int32_t>>& seqs, int64_t block_size,
                     int64_t* tokens, int64_t* blocks) {
  AttentionBatch batch;
  batch.query_start.push_back(0);
  int32_t next_block = 0;
  for (const auto& [context, queries] : seqs) {
    batch.context_len.push_back(context);
    batch.query_start.push_back(batch.query_start.back() + queries);
    std::vector<int32_t> table;
    for (int64_t i = 0; i < (context + block_size - 1) / block_size; ++i)
      table.push_back(next_block++);
    batch.block_tables.push_back(table);
  }
  *tokens = batch.query_start.back();
  *blocks = next_block + 1;
  return batch;
}

AttentionGeometry Geometry(int64_t tokens, int64_t hq, int64_t hk, int64_t blocks,
                           int64_t block_size) {
  AttentionGeometry g;
  g.tokens = tokens;
  g.q_heads = hq;
  g.kv_heads = hk;
  g.head_dim = 128;
  g.num_blocks = blocks;
  g.block_size = block_size;
  return g;
}

// Every query row in exactly one tile, at its position, tiles within one sequence.
void ExpectTilesCoverRows(const PagedAttentionPlan& plan, const AttentionBatch& batch) {
  std::vector<int> seen(batch.query_start.back(), 0);
  for (int32_t t = 0; t < plan.num_tiles(); ++t) {
    const int32_t* tile = plan.tiles() + t * kTileFields;
    const int32_t row0 = tile[0], rows = tile[1], pos0 = tile[2], seq = tile[3];
    ASSERT_GE(rows, 1);
    ASSERT_LE(rows, plan.rows_per_tile());
    const int32_t n = batch.query_start[seq + 1] - batch.query_start[seq];
    ASSERT_GE(row0, batch.query_start[seq]);
    ASSERT_LE(row0 + rows, batch.query_start[seq + 1]);
    EXPECT_EQ(pos0, batch.context_len[seq] - n + (row0 - batch.query_start[seq]));
    for (int32_t r = row0; r < row0 + rows; ++r) ++seen[r];
  }
  for (size_t r = 0; r < seen.size(); ++r) EXPECT_EQ(seen[r], 1) << "row " << r;
}

TEST(PagedAttentionPlanTest, TilesHoldAGroupsQueryHeadsForSeveralRows) {
  int64_t tokens, blocks;
  const AttentionBatch batch = Batch({{20, 20}, {7, 1}, {0, 0}, {33, 5}}, 16, &tokens, &blocks);
  for (auto [hq, hk] : std::vector<std::pair<int64_t, int64_t>>{
           {2, 2}, {4, 2}, {6, 2}, {16, 8}, {12, 1}, {64, 1}}) {
    SCOPED_TRACE(::testing::Message() << "Hq=" << hq << " Hk=" << hk);
    absl::StatusOr<PagedAttentionPlan> plan =
        PagedAttentionPlan::Make(batch, Geometry(tokens, hq, hk, blocks, 16), 1000);
    ASSERT_TRUE(plan.ok()) << plan.status();
    const int64_t group = hq / hk;
    EXPECT_LE(plan->heads_per_block() * plan->rows_per_tile(), kAttentionMaxQueries);
    EXPECT_GE(plan->heads_per_block() * plan->head_chunks(), group);
    EXPECT_LT(plan->heads_per_block() * (plan->head_chunks() - 1), group);
    ExpectTilesCoverRows(*plan, batch);
  }
}

TEST(PagedAttentionPlanTest, SplitsKeysOnlyWhenTheBatchLeavesTheDeviceIdle) {
  int64_t tokens, blocks;
  // Decode of 32 sequences at 2048 tokens, 8 KV heads: 256 (tile, head) blocks.
  std::vector<std::pair<int32_t, int32_t>> decode(32, {2048, 1});
  const AttentionBatch batch = Batch(decode, 16, &tokens, &blocks);
  const AttentionGeometry g = Geometry(tokens, 16, 8, blocks, 16);
  absl::StatusOr<PagedAttentionPlan> full = PagedAttentionPlan::Make(batch, g, 256);
  ASSERT_TRUE(full.ok());
  EXPECT_EQ(full->num_partitions(), 1);
  EXPECT_EQ(full->partial_floats(), 0u);
  absl::StatusOr<PagedAttentionPlan> idle = PagedAttentionPlan::Make(batch, g, 132 * 4);
  ASSERT_TRUE(idle.ok());
  EXPECT_EQ(idle->num_partitions(), 2);  // 512 blocks fill 528 slots in one wave
  EXPECT_EQ(idle->partition_keys() % kAttentionChunk, 0);
  EXPECT_GE(int64_t{idle->num_partitions()} * idle->partition_keys(), 2048);
  EXPECT_GT(idle->partial_floats(), 0u);
  // One long sequence: as many partitions as there are chunks of keys, and no more.
  const AttentionBatch one = Batch({{1000, 1}}, 16, &tokens, &blocks);
  absl::StatusOr<PagedAttentionPlan> split =
      PagedAttentionPlan::Make(one, Geometry(tokens, 8, 8, blocks, 16), 10000);
  ASSERT_TRUE(split.ok());
  EXPECT_EQ(split->num_partitions(), 4);
  EXPECT_EQ(split->partition_keys(), kAttentionChunk);
}

// A graph's plan: the same launch shape (tiles, table width, partitions) for any contexts up
// to the fixed bound, the tables still right, and a context beyond the bound refused.
TEST(PagedAttentionPlanTest, AFixedShapeIsTheSameForEveryContextUpToTheBound) {
  int64_t tokens, blocks;
  const AttentionBatch short_batch =
      Batch({{3, 1}, {40, 1}, {17, 1}, {1, 1}}, 16, &tokens, &blocks);
  const AttentionGeometry g = Geometry(tokens, 8, 2, 256, 16);
  const AttentionBatch long_batch =
      Batch({{900, 1}, {2, 1}, {1000, 1}, {64, 1}}, 16, &tokens, &blocks);
  auto a = PagedAttentionPlan::Make(short_batch, g, 528, 1024);
  auto b = PagedAttentionPlan::Make(long_batch, Geometry(tokens, 8, 2, 256, 16), 528, 1024);
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(a->num_tiles(), 4);
  EXPECT_EQ(a->num_tiles(), b->num_tiles());
  EXPECT_EQ(a->max_blocks(), 1024 / 16);
  EXPECT_EQ(a->max_blocks(), b->max_blocks());
  EXPECT_EQ(a->num_partitions(), b->num_partitions());
  EXPECT_EQ(a->partition_keys(), b->partition_keys());
  EXPECT_EQ(a->partial_floats(), b->partial_floats());
  EXPECT_EQ(a->device_bytes(), b->device_bytes());
  EXPECT_GE(int64_t{a->num_partitions()} * a->partition_keys(), 1024);
  ExpectTilesCoverRows(*a, short_batch);
  // The second sequence's table (blocks 1..3 of the short batch) is in place, then zeros.
  const int32_t* row = a->block_tables() + 1 * a->max_blocks();
  EXPECT_EQ(row[0], 1);
  EXPECT_EQ(row[2], 3);
  EXPECT_EQ(row[3], 0);
  // Without the bound the short batch's plan is narrower: the bound is what fixes it.
  auto free_shape = PagedAttentionPlan::Make(short_batch, g, 528);
  ASSERT_TRUE(free_shape.ok());
  EXPECT_LT(free_shape->max_blocks(), a->max_blocks());
  auto over = PagedAttentionPlan::Make(long_batch, Geometry(tokens, 8, 2, 256, 16), 528, 512);
  EXPECT_EQ(over.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(PagedAttentionPlanTest, BlockTablesArePaddedToTheLongest) {
  int64_t tokens, blocks;
  const AttentionBatch batch = Batch({{5, 1}, {40, 2}}, 8, &tokens, &blocks);
  absl::StatusOr<PagedAttentionPlan> plan =
      PagedAttentionPlan::Make(batch, Geometry(tokens, 2, 1, blocks, 8), 100);
  ASSERT_TRUE(plan.ok());
  ASSERT_EQ(plan->max_blocks(), 5);
  EXPECT_EQ(plan->block_tables()[0], 0);
  for (int i = 1; i < 5; ++i) EXPECT_EQ(plan->block_tables()[i], 0);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(plan->block_tables()[5 + i], 1 + i);
}

TEST(PagedAttentionPlanTest, EmptyBatch) {
  AttentionBatch batch;
  batch.query_start = {0};
  absl::StatusOr<PagedAttentionPlan> plan =
      PagedAttentionPlan::Make(batch, Geometry(0, 4, 2, 1, 16), 100);
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->num_tiles(), 0);
  EXPECT_TRUE(plan->uploaded());
}

class PagedAttentionPlanBadBatchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    batch_.query_start = {0, 2, 3};
    batch_.context_len = {5, 3};
    batch_.block_tables = {{0, 1}, {2}};
  }
  absl::StatusCode Make() {
    return PagedAttentionPlan::Make(batch_, geometry_, 100).status().code();
  }
  AttentionBatch batch_;
  AttentionGeometry geometry_ = Geometry(3, 2, 1, 3, 4);
};

TEST_F(PagedAttentionPlanBadBatchTest, ValidBatchPasses) {
  EXPECT_EQ(Make(), absl::StatusCode::kOk);
}

TEST_F(PagedAttentionPlanBadBatchTest, BlockIdOutOfRange) {
  batch_.block_tables[0][1] = 3;
  EXPECT_EQ(Make(), absl::StatusCode::kInvalidArgument);
  batch_.block_tables[0][1] = -1;
  EXPECT_EQ(Make(), absl::StatusCode::kInvalidArgument);
}

TEST_F(PagedAttentionPlanBadBatchTest, ContextBeyondBlockTable) {
  batch_.context_len[1] = 5;
  EXPECT_EQ(Make(), absl::StatusCode::kInvalidArgument);
}

TEST_F(PagedAttentionPlanBadBatchTest, InconsistentQueryStart) {
  batch_.query_start = {0, 2, 4};
  EXPECT_EQ(Make(), absl::StatusCode::kInvalidArgument);
  batch_.query_start = {1, 2, 3};
  EXPECT_EQ(Make(), absl::StatusCode::kInvalidArgument);
  batch_.query_start = {0, 3, 2};
  EXPECT_EQ(Make(), absl::StatusCode::kInvalidArgument);
  batch_.query_start = {0, 3};
  EXPECT_EQ(Make(), absl::StatusCode::kInvalidArgument);
}

TEST_F(PagedAttentionPlanBadBatchTest, MoreQueriesThanContext) {
  batch_.context_len[0] = 1;
  EXPECT_EQ(Make(), absl::StatusCode::kInvalidArgument);
}

TEST_F(PagedAttentionPlanBadBatchTest, BadGeometry) {
  geometry_.kv_heads = 3;  // 2 query heads over 3 KV heads
  EXPECT_EQ(Make(), absl::StatusCode::kInvalidArgument);
  geometry_ = Geometry(3, 130, 2, 3, 4);  // a group of 65
  EXPECT_EQ(Make(), absl::StatusCode::kInvalidArgument);
  geometry_ = Geometry(3, 2, 1, 3, 4);
  geometry_.head_dim = 257;
  EXPECT_EQ(Make(), absl::StatusCode::kInvalidArgument);
  geometry_.head_dim = 64;
  geometry_.cache_dtype = DType::kI32;
  EXPECT_EQ(Make(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace loom::kernels::cuda
