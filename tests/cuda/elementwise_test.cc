#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "kernels/cuda/cuda_kernels.h"
#include "kernels/kernels.h"
#include "tests/cuda/cuda_test_util.h"

namespace loom::kernels::cuda {
namespace {

using testing::CudaTest;

class CudaElementwiseTest : public CudaTest {};

TEST_F(CudaElementwiseTest, SiluAndMulMatchesTheCpu) {
  std::mt19937 rng(30);
  for (const auto& [t, inter] :
       std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {3, 5}, {32, 3072}, {7, 1000}}) {
    SCOPED_TRACE(::testing::Message() << "T=" << t << " I=" << inter);
    Tensor gate_up = testing::RandomF32({t, 2 * inter}, rng, -8.0f, 8.0f);
    Tensor want = Tensor::Empty(DType::kF32, {t, inter});
    ASSERT_TRUE(kernels::SiluAndMul(kernels::HostContext(), gate_up, want).ok());
    Tensor dgate_up = ToDevice(gate_up), dout = Poisoned(DType::kF32, {t, inter});
    ASSERT_TRUE(SiluAndMul(ctx(), dgate_up, dout).ok());
    Tensor got = ToHost(dout);
    testing::ExpectClose(got.data<float>(), testing::AsDoubles(want), 1e-6, 1e-6, "out");
  }
}

TEST_F(CudaElementwiseTest, EmbeddingMatchesTheCpuForEveryTableTypeAndShardEdge) {
  std::mt19937 rng(31);
  const int64_t vocab = 50, h = 33, vocab_start = 100;
  // Inside the shard, its edges, and ids of other shards (below, above, negative).
  const std::vector<int32_t> id_values = {100, 149, 120, 99, 150, 0, -5, 1000000, 101, 100};
  Tensor ids = Tensor::Empty(DType::kI32, {static_cast<int64_t>(id_values.size())});
  std::copy(id_values.begin(), id_values.end(), ids.data<int32_t>());
  Tensor table_f32 = testing::RandomF32({vocab, h}, rng);
  for (DType type : {DType::kF32, DType::kBF16, DType::kF16}) {
    SCOPED_TRACE(DTypeName(type));
    Tensor table = type == DType::kF32 ? table_f32 : testing::RoundTo(table_f32, type);
    // The CPU takes f32 and bf16 tables; the f16 table is compared through its exact widening.
    Tensor cpu_table = type == DType::kF16 ? testing::ToF32(table) : table;
    Tensor want = Tensor::Empty(DType::kF32, {ids.size(0), h});
    ASSERT_TRUE(kernels::Embedding(kernels::HostContext(), ids, cpu_table, vocab_start, want).ok());
    Tensor dids = ToDevice(ids), dtable = ToDevice(table);
    Tensor dout = Poisoned(DType::kF32, {ids.size(0), h});
    ASSERT_TRUE(Embedding(ctx(), dids, dtable, vocab_start, dout).ok());
    Tensor got = ToHost(dout);
    testing::ExpectClose(got.data<float>(), testing::AsDoubles(want), 0, 0, "out");
  }
}

TEST_F(CudaElementwiseTest, RejectsBadArguments) {
  Tensor gate_up = Poisoned(DType::kF32, {2, 7}), out = Poisoned(DType::kF32, {2, 3});
  EXPECT_EQ(SiluAndMul(ctx(), gate_up, out).code(), absl::StatusCode::kInvalidArgument);
  Tensor ids = Poisoned(DType::kI32, {2}), table = Poisoned(DType::kBF16, {4, 3});
  Tensor emb = Poisoned(DType::kF32, {2, 3});
  EXPECT_EQ(Embedding(ctx(), ids, table, -1, emb).code(), absl::StatusCode::kInvalidArgument);
  Tensor int_table = Poisoned(DType::kI32, {4, 3});
  EXPECT_EQ(Embedding(ctx(), ids, int_table, 0, emb).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace loom::kernels::cuda
