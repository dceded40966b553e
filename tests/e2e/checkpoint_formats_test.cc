// Checkpoints in every on-disk form give the model they describe: sharded or single-file, and
// f32, bf16 or f16 on disk.
#include <filesystem>

#include <gtest/gtest.h>

#include "tests/e2e/in_process.h"
#include "tests/e2e/model_dir.h"

namespace loom {
namespace {

namespace fs = std::filesystem;

std::vector<std::vector<int32_t>> Greedy(const std::string& model, DType weight_dtype) {
  EngineConfig c;
  c.load.model = model;
  c.load.weight_dtype = weight_dtype;
  c.cache.kv_cache_bytes = 4 << 20;
  auto engine = testing::StartEngine(c);
  EXPECT_TRUE(engine.ok()) << engine.status();
  if (!engine.ok()) return {};
  std::vector<GenerationRequest> rs(2);
  rs[0].prompt_ids = {1, 2, 3, 4, 5};
  rs[1].prompt_ids = {9, 8, 7};
  for (auto& r : rs) {
    r.max_tokens = 16;
    r.ignore_eos = true;
  }
  auto results = testing::GenerateAll(**engine, rs);
  EXPECT_TRUE(results.ok()) << results.status();
  std::vector<std::vector<int32_t>> out;
  if (!results.ok()) return out;
  for (const auto& r : *results) out.push_back(r.token_ids);
  return out;
}

TEST(CheckpointFormatsTest, ShardedCheckpointLoadsTheSameModelAsOneFile) {
  const std::string flags = "--preset llama-tiny --dtype float32 --seed 5";
  const std::string single = testing::MakeModel(flags);
  const std::string sharded = testing::MakeModel(flags + " --max-file-size 60000");
  ASSERT_TRUE(fs::exists(sharded + "/model.safetensors.index.json"));
  int shards = 0;
  for (const auto& e : fs::directory_iterator(sharded)) shards += e.path().extension() == ".safetensors";
  EXPECT_GT(shards, 2);
  EXPECT_EQ(Greedy(sharded, DType::kF32), Greedy(single, DType::kF32));
}

TEST(CheckpointFormatsTest, HalfAndBfloatCheckpointsLoadTheirValues) {
  // The same seed gives the same weights rounded to each dtype; bf16 storage of a bf16
  // checkpoint is exact, so it must equal f32 storage of the same checkpoint.
  const std::string bf16 = testing::MakeModel("--preset llama-tiny --dtype bfloat16 --seed 5");
  EXPECT_EQ(Greedy(bf16, DType::kBF16), Greedy(bf16, DType::kF32));
  const std::string f16 = testing::MakeModel("--preset llama-tiny --dtype float16 --seed 5");
  const auto from_f16 = Greedy(f16, DType::kF32);
  ASSERT_EQ(from_f16.size(), 2u);
  EXPECT_EQ(from_f16[0].size(), 16u);
}

}  // namespace
}  // namespace loom
