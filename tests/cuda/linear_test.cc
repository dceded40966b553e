#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <tuple>
#include <vector>

#include "kernels/cuda/cuda_kernels.h"
#include "kernels/kernels.h"
#include "tests/cuda/cuda_test_util.h"

namespace loom::kernels::cuda {
namespace {

using testing::CudaTest;

// Per output element, Σ_k |x[m, k] · w[n, k]|: the scale of the rounding errors of a dot product.
std::vector<double> L1Scale(const Tensor& x, const Tensor& w_f32) {
  const int64_t M = x.size(0), K = x.size(1), N = w_f32.size(0);
  std::vector<double> scale(static_cast<size_t>(M * N));
  for (int64_t m = 0; m < M; ++m) {
    for (int64_t n = 0; n < N; ++n) {
      double s = 0;
      for (int64_t k = 0; k < K; ++k) {
        s += std::fabs(static_cast<double>(x.data<float>()[m * K + k]) *
                       w_f32.data<float>()[n * K + k]);
      }
      scale[m * N + n] = s;
    }
  }
  return scale;
}

void ExpectWithin(const Tensor& got, const Tensor& want, const std::vector<double>& scale,
                  double relative, const char* what) {
  int reported = 0;
  for (int64_t i = 0; i < got.numel(); ++i) {
    const double g = got.data<float>()[i], w = want.data<float>()[i];
    const double tol = 1e-6 + relative * scale[i];
    if (!(std::fabs(g - w) <= tol)) {
      ADD_FAILURE() << what << "[" << i << "]: got " << g << ", want " << w << " (tol " << tol
                    << ")";
      if (++reported >= 5) return;
    }
  }
}

class CudaLinearTest : public CudaTest {
 protected:
  // Runs the CUDA Linear on (x, w, bias) and returns the host result.
  Tensor RunCuda(const Tensor& x, const Tensor& w, const Tensor* bias) {
    Tensor dx = ToDevice(x), dw = ToDevice(w);
    Tensor dbias = bias != nullptr ? ToDevice(*bias) : Tensor();
    Tensor dout = Poisoned(DType::kF32, {x.size(0), w.size(0)});
    const absl::Status status = Linear(ctx(), dx, dw, bias != nullptr ? &dbias : nullptr, dout);
    EXPECT_TRUE(status.ok()) << status;
    return ToHost(dout);
  }

  static Tensor RunCpu(const Tensor& x, const Tensor& w, const Tensor* bias) {
    Tensor out = Tensor::Empty(DType::kF32, {x.size(0), w.size(0)});
    const absl::Status status = kernels::Linear(kernels::HostContext(), x, w, bias, out);
    EXPECT_TRUE(status.ok()) << status;
    return out;
  }
};

const std::vector<std::tuple<int64_t, int64_t, int64_t>> kShapes = {
    {1, 1, 1}, {3, 5, 7}, {1, 4096, 1024}, {8, 1024, 2048}, {32, 96, 130}, {65, 33, 64}};

TEST_F(CudaLinearTest, F32WeightsMatchTheCpu) {
  std::mt19937 rng(1);
  for (const auto& [M, N, K] : kShapes) {
    SCOPED_TRACE(::testing::Message() << "M=" << M << " N=" << N << " K=" << K);
    Tensor x = testing::RandomF32({M, K}, rng), w = testing::RandomF32({N, K}, rng);
    Tensor bias = testing::RandomF32({N}, rng);
    for (const Tensor* b :
         {static_cast<const Tensor*>(nullptr), static_cast<const Tensor*>(&bias)}) {
      Tensor got = RunCuda(x, w, b), want = RunCpu(x, w, b);
      ExpectWithin(got, want, L1Scale(x, w), 1e-5, "out");
    }
  }
}

TEST_F(CudaLinearTest, Bf16WeightsMatchTheCpuUpToActivationRounding) {
  std::mt19937 rng(2);
  for (const auto& [M, N, K] : kShapes) {
    SCOPED_TRACE(::testing::Message() << "M=" << M << " N=" << N << " K=" << K);
    Tensor x = testing::RandomF32({M, K}, rng), w = testing::RandomBf16({N, K}, rng);
    Tensor bias = testing::RandomF32({N}, rng);
    const std::vector<double> scale = L1Scale(x, testing::ToF32(w));
    Tensor got = RunCuda(x, w, &bias);
    // Against the CPU on the same bf16-rounded activations: only the summation order differs.
    Tensor x_rounded = testing::ToF32(testing::RoundTo(x, DType::kBF16));
    ExpectWithin(got, RunCpu(x_rounded, w, &bias), scale, 1e-5, "out vs rounded x");
    // Against the CPU on the f32 activations: within the rounding of x (2^-9 per product).
    ExpectWithin(got, RunCpu(x, w, &bias), scale, 1.0 / 256, "out vs f32 x");
  }
}

TEST_F(CudaLinearTest, F16WeightsMatchTheCpuOnWidenedWeights) {
  std::mt19937 rng(3);
  for (const auto& [M, N, K] : kShapes) {
    SCOPED_TRACE(::testing::Message() << "M=" << M << " N=" << N << " K=" << K);
    Tensor x = testing::RandomF32({M, K}, rng);
    Tensor w = testing::RoundTo(testing::RandomF32({N, K}, rng), DType::kF16);
    Tensor w_f32 = testing::ToF32(w);
    Tensor x_rounded = testing::ToF32(testing::RoundTo(x, DType::kF16));
    ExpectWithin(RunCuda(x, w, nullptr), RunCpu(x_rounded, w_f32, nullptr), L1Scale(x, w_f32), 1e-5,
                 "out");
  }
}

TEST_F(CudaLinearTest, EmptyInnerDimensionGivesBias) {
  Tensor x = Tensor::Empty(DType::kF32, {3, 0}), w = Tensor::Empty(DType::kBF16, {4, 0});
  std::mt19937 rng(4);
  Tensor bias = testing::RandomF32({4}, rng);
  Tensor got = RunCuda(x, w, &bias);
  for (int64_t m = 0; m < 3; ++m) {
    for (int64_t n = 0; n < 4; ++n) EXPECT_EQ(got.data<float>()[m * 4 + n], bias.data<float>()[n]);
  }
}

TEST_F(CudaLinearTest, RejectsBadShapesAndTypes) {
  Tensor x = Poisoned(DType::kF32, {2, 8}), out = Poisoned(DType::kF32, {2, 4});
  Tensor w_wide = Poisoned(DType::kBF16, {4, 9});
  EXPECT_EQ(Linear(ctx(), x, w_wide, nullptr, out).code(), absl::StatusCode::kInvalidArgument);
  Tensor w_int = Poisoned(DType::kI32, {4, 8});
  EXPECT_EQ(Linear(ctx(), x, w_int, nullptr, out).code(), absl::StatusCode::kInvalidArgument);
  Tensor w = Poisoned(DType::kBF16, {4, 8}), bias = Poisoned(DType::kF32, {5});
  EXPECT_EQ(Linear(ctx(), x, w, &bias, out).code(), absl::StatusCode::kInvalidArgument);
  Tensor out_wrong = Poisoned(DType::kF32, {2, 5});
  EXPECT_EQ(Linear(ctx(), x, w, nullptr, out_wrong).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace loom::kernels::cuda
