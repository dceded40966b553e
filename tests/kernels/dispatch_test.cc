// The one kernel API's own rules, on the host: tensors must live on the context's device, the
// host's memory operations, and the Copy and GatherRows entry points the decoder needs.
#include <gtest/gtest.h>

#include <random>

#include "absl/strings/match.h"
#include "kernels/kernels.h"
#include "kernels/sampling.h"
#include "tests/kernels/kernel_test_util.h"

namespace loom::kernels {
namespace {

using testing::RandomF32;

// A view that claims to live on GPU 0 (its memory is the host's: the checks never read it).
Tensor OnGpu(const Tensor& t) {
  return Tensor::Borrow(t.raw_data(), t.dtype(), t.shape(), nullptr, Device::Cuda(0));
}

TEST(DispatchTest, ATensorOnAnotherDeviceIsRefusedBeforeAnyWork) {
  std::mt19937 rng(1);
  Tensor x = RandomF32({2, 8}, rng), w = RandomF32({4, 8}, rng);
  Tensor out = Tensor::Empty(DType::kF32, {2, 4});
  Tensor gpu_w = OnGpu(w);
  absl::Status s = Linear(HostContext(), x, gpu_w, nullptr, out);
  ASSERT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "Linear: w is on cuda:0, the context on cpu")) << s;
  Tensor gpu_out = OnGpu(out);
  EXPECT_FALSE(RmsNorm(HostContext(), x, x, 1e-6f, gpu_out).ok());
  Tensor logits = OnGpu(RandomF32({1, 8}, rng));
  EXPECT_FALSE(Sample(HostContext(), logits, {SamplingParams{}}, {0}).ok());
  // Host-side element access refuses device tensors too.
  Tensor host = Tensor::Empty(DType::kF32, {4, 8});
  EXPECT_FALSE(host.CopyFrom(gpu_w).ok());
  EXPECT_FALSE(gpu_w.To(DType::kBF16).ok());
}

TEST(DispatchTest, CopyTakesContiguousAndTwoDimensionalRowViews) {
  std::mt19937 rng(2);
  Tensor fused = RandomF32({3, 10}, rng);
  Tensor cols = *fused.Slice(1, 4, 5);  // rows of 10, 5 wide from column 4
  Tensor out = Tensor::Empty(DType::kF32, {3, 5});
  ASSERT_TRUE(Copy(HostContext(), cols, out).ok());
  for (int r = 0; r < 3; ++r) {
    for (int c = 0; c < 5; ++c) {
      EXPECT_EQ(out.data<float>()[r * 5 + c], fused.data<float>()[r * 10 + 4 + c]);
    }
  }
  Tensor wrong = Tensor::Empty(DType::kF32, {5, 3});
  EXPECT_EQ(Copy(HostContext(), cols, wrong).code(), absl::StatusCode::kInvalidArgument);
  Tensor bf16 = Tensor::Empty(DType::kBF16, {3, 5});
  EXPECT_EQ(Copy(HostContext(), cols, bf16).code(), absl::StatusCode::kInvalidArgument);
}

TEST(DispatchTest, GatherRowsPicksRowsAndRefusesOnesOutside) {
  std::mt19937 rng(3);
  Tensor x = RandomF32({5, 6}, rng);
  std::vector<int32_t> picks = {4, 0, 4};
  Tensor rows = Tensor::Borrow(picks.data(), DType::kI32, {3});
  Tensor out = Tensor::Empty(DType::kF32, {3, 6});
  ASSERT_TRUE(GatherRows(HostContext(), x, rows, out).ok());
  for (int r = 0; r < 3; ++r) {
    for (int c = 0; c < 6; ++c) {
      EXPECT_EQ(out.data<float>()[r * 6 + c], x.data<float>()[picks[r] * 6 + c]);
    }
  }
  picks[1] = 5;
  const absl::Status s = GatherRows(HostContext(), x, rows, out);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  Tensor small = Tensor::Empty(DType::kF32, {2, 6});
  EXPECT_FALSE(GatherRows(HostContext(), x, rows, small).ok());
}

TEST(DispatchTest, TheHostContextCopiesAndReportsMemory) {
  ExecutionContext& host = HostContext();
  EXPECT_TRUE(host.device().is_cpu());
  auto t = host.Allocate(DType::kI64, {4});
  ASSERT_TRUE(t.ok());
  std::vector<int64_t> values = {1, -2, 3, -4};
  Tensor src = Tensor::Borrow(values.data(), DType::kI64, {4});
  ASSERT_TRUE(host.Upload(src, *t).ok());
  EXPECT_EQ(t->data<int64_t>()[3], -4);
  Tensor back = Tensor::Empty(DType::kI64, {4});
  ASSERT_TRUE(host.Download(*t, back).ok());
  EXPECT_EQ(back.data<int64_t>()[1], -2);
  EXPECT_FALSE(host.Upload(src, Tensor::Empty(DType::kI32, {4})).ok());
  auto same = OnHost(host, *t);
  ASSERT_TRUE(same.ok());
  EXPECT_EQ(same->raw_data(), t->raw_data());  // a host tensor is not copied
  auto memory = host.Memory();
  ASSERT_TRUE(memory.ok());
  EXPECT_GT(memory->total_bytes, 0);
  EXPECT_GT(memory->free_bytes, 0);
  EXPECT_LE(memory->free_bytes, memory->total_bytes);
}

TEST(DispatchTest, APlanServesEveryLayerAndIsCheckedOnce) {
  std::mt19937 rng(4);
  Tensor q = RandomF32({3, 2, 4}, rng);
  Tensor k_cache = RandomF32({2, 4, 1, 4}, rng), v_cache = RandomF32({2, 4, 1, 4}, rng);
  AttentionBatch batch;
  batch.query_start = {0, 3};
  batch.context_len = {5};
  batch.block_tables = {{1, 0}};
  auto plan = PlanAttention(HostContext(), batch, q, k_cache);
  ASSERT_TRUE(plan.ok()) << plan.status();
  Tensor a = Tensor::Empty(DType::kF32, {3, 2, 4}), b = Tensor::Empty(DType::kF32, {3, 2, 4});
  ASSERT_TRUE(PagedAttention(HostContext(), q, k_cache, v_cache, **plan, 0.5f, 0, a).ok());
  ASSERT_TRUE(PagedAttention(HostContext(), q, k_cache, v_cache, batch, 0.5f, 0, b).ok());
  for (int i = 0; i < 24; ++i) EXPECT_EQ(a.data<float>()[i], b.data<float>()[i]);
  batch.block_tables = {{7, 0}};  // block 7 of 2
  EXPECT_EQ(PlanAttention(HostContext(), batch, q, k_cache).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace loom::kernels
