// Times the CUDA kernels against ceilings measured in the same run on the same device: the
// device-to-device copy bandwidth (bytes read + written per second) for memory-bound kernels and
// cuBLAS's bf16 GEMM rate for compute-bound ones. Each row gives the time per call, what it
// achieved (GB/s moved, or TFLOP/s), and the ratio of the roofline time (the larger of bytes /
// copy bandwidth and flops / GEMM rate) to the measured time: 100% is at the ceiling.
//
// Shapes follow Qwen3-0.6B (hidden 1024, 16 query heads and 8 KV heads of 128, MLP 3072, vocab
// 151936). Linear weights are cycled through enough copies to overflow the L2 cache, as they
// are in a whole forward pass; the paged-attention KV cache is far larger than L2 already.
//
// Usage: loom-bench-cuda-kernels [--quick]
// Exits 2 with a message when there is no CUDA device.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "common/flags.h"
#include "common/status.h"
#include "common/tensor.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/rope.h"

namespace loom::kernels::cuda {
namespace {

constexpr int64_t kHidden = 1024, kHeads = 16, kKvHeads = 8, kHeadDim = 128, kInter = 3072;
constexpr int64_t kVocab = 151936;

struct Ceilings {
  double copy_gbps = 0;    // bytes read + written per second, /1e9
  double gemm_tflops = 0;  // bf16 in, f32 out, f32 accumulation
};

struct Row {
  std::string kernel, shape;
  double us = 0;
  double bytes = 0, flops = 0;
};

// Fills a host tensor of a float type with uniform values in [lo, hi) from a fast generator.
Tensor HostRandom(DType dtype, std::vector<int64_t> shape, uint64_t seed, float lo, float hi) {
  Tensor f32 = Tensor::Empty(DType::kF32, shape);
  uint64_t s = seed * 0x9e3779b97f4a7c15ull + 1;
  float* p = f32.data<float>();
  for (int64_t i = 0; i < f32.numel(); ++i) {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    p[i] = lo + (hi - lo) * static_cast<float>(s >> 40) * (1.0f / 16777216.0f);
  }
  if (dtype == DType::kF32) return f32;
  return *f32.To(dtype);
}

class Bench {
 public:
  explicit Bench(DeviceContext& context, bool quick) : ctx_(context), quick_(quick) {}

  absl::StatusOr<Tensor> Device(const Tensor& host) {
    LOOM_ASSIGN_OR_RETURN(Tensor device, AllocateDeviceTensor(host.dtype(), host.shape()));
    LOOM_RETURN_IF_ERROR(CopyToDevice(ctx_, host, device));
    return device;
  }

  absl::StatusOr<Tensor> Random(DType dtype, std::vector<int64_t> shape, float lo = -1.0f,
                                float hi = 1.0f) {
    return Device(HostRandom(dtype, std::move(shape), ++seed_, lo, hi));
  }

  // Microseconds per call of fn(i), from CUDA events around `reps` calls after two warm-ups.
  absl::StatusOr<double> TimeUs(int reps, const std::function<absl::Status(int)>& fn) {
    LOOM_RETURN_IF_ERROR(fn(0));
    LOOM_RETURN_IF_ERROR(fn(1));
    cudaEvent_t start, stop;
    LOOM_CUDA_CHECK(cudaEventCreate(&start));
    LOOM_CUDA_CHECK(cudaEventCreate(&stop));
    LOOM_CUDA_CHECK(cudaEventRecord(start, ctx_.stream()));
    for (int i = 0; i < reps; ++i) LOOM_RETURN_IF_ERROR(fn(i + 2));
    LOOM_CUDA_CHECK(cudaEventRecord(stop, ctx_.stream()));
    LOOM_RETURN_IF_ERROR(ctx_.Synchronize());
    float ms = 0;
    LOOM_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    (void)cudaEventDestroy(start);
    (void)cudaEventDestroy(stop);
    return ms * 1000.0 / reps;
  }

  int Reps(int full) const { return quick_ ? std::max(2, full / 5) : full; }

  absl::Status MeasureCeilings() {
    const size_t bytes = quick_ ? (size_t{256} << 20) : (size_t{1} << 30);
    void *a = nullptr, *b = nullptr;
    LOOM_CUDA_CHECK(cudaMalloc(&a, bytes));
    LOOM_CUDA_CHECK(cudaMalloc(&b, bytes));
    LOOM_CUDA_CHECK(cudaMemsetAsync(a, 1, bytes, ctx_.stream()));
    LOOM_ASSIGN_OR_RETURN(
        const double copy_us, TimeUs(Reps(20), [&](int) -> absl::Status {
          LOOM_CUDA_CHECK(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, ctx_.stream()));
          return absl::OkStatus();
        }));
    ceilings_.copy_gbps = 2.0 * bytes / (copy_us * 1e-6) / 1e9;
    (void)cudaFree(a);
    (void)cudaFree(b);

    const int n = quick_ ? 4096 : 8192;
    LOOM_ASSIGN_OR_RETURN(Tensor x, Random(DType::kBF16, {n, n}));
    LOOM_ASSIGN_OR_RETURN(Tensor w, Random(DType::kBF16, {n, n}));
    LOOM_ASSIGN_OR_RETURN(Tensor out, AllocateDeviceTensor(DType::kF32, {n, n}));
    const float alpha = 1.0f, beta = 0.0f;
    LOOM_ASSIGN_OR_RETURN(
        const double gemm_us, TimeUs(Reps(20), [&](int) -> absl::Status {
          LOOM_CUBLAS_CHECK(cublasGemmEx(ctx_.cublas(), CUBLAS_OP_T, CUBLAS_OP_N, n, n, n, &alpha,
                                         w.raw_data(), CUDA_R_16BF, n, x.raw_data(), CUDA_R_16BF, n,
                                         &beta, out.raw_data(), CUDA_R_32F, n, CUBLAS_COMPUTE_32F,
                                         CUBLAS_GEMM_DEFAULT));
          return absl::OkStatus();
        }));
    ceilings_.gemm_tflops = 2.0 * n * n * double(n) / (gemm_us * 1e-6) / 1e12;
    return absl::OkStatus();
  }

  void Add(std::string kernel, std::string shape, double us, double bytes, double flops) {
    rows_.push_back(Row{std::move(kernel), std::move(shape), us, bytes, flops});
  }

  // Linear with bf16 weights at Qwen3-0.6B's projection shapes.
  absl::Status Linears() {
    struct Shape {
      const char* name;
      int64_t n, k;
    };
    const std::vector<Shape> shapes = {{"qkv_proj", (kHeads + 2 * kKvHeads) * kHeadDim, kHidden},
                                       {"o_proj", kHidden, kHeads * kHeadDim},
                                       {"gate_up_proj", 2 * kInter, kHidden},
                                       {"down_proj", kHidden, kInter},
                                       {"lm_head", kVocab, kHidden}};
    for (const Shape& s : shapes) {
      const double weight_bytes = 2.0 * s.n * s.k;
      const int copies =
          static_cast<int>(std::clamp(std::ceil((512.0 * (1 << 20)) / weight_bytes), 1.0, 64.0));
      std::vector<Tensor> weights;
      for (int c = 0; c < copies; ++c) {
        LOOM_ASSIGN_OR_RETURN(Tensor w, c == 0 ? Random(DType::kBF16, {s.n, s.k})
                                               : AllocateDeviceTensor(DType::kBF16, {s.n, s.k}));
        if (c > 0) {
          LOOM_CUDA_CHECK(cudaMemcpyAsync(w.raw_data(), weights[0].raw_data(), w.nbytes(),
                                          cudaMemcpyDeviceToDevice, ctx_.stream()));
        }
        weights.push_back(std::move(w));
      }
      for (int64_t m : {1, 8, 32, 512}) {
        LOOM_ASSIGN_OR_RETURN(Tensor x, Random(DType::kF32, {m, s.k}));
        LOOM_ASSIGN_OR_RETURN(Tensor out, AllocateDeviceTensor(DType::kF32, {m, s.n}));
        LOOM_ASSIGN_OR_RETURN(const double us, TimeUs(Reps(50), [&](int i) {
                                return Linear(ctx_, x, weights[i % copies], nullptr, out);
                              }));
        // Weights once; x read as f32, written and read as bf16; out written.
        const double bytes = weight_bytes + m * s.k * (4.0 + 2.0 + 2.0) + 4.0 * m * s.n;
        Add(absl::StrFormat("Linear %s bf16", s.name),
            absl::StrFormat("M=%d N=%d K=%d", m, s.n, s.k), us, bytes, 2.0 * m * s.n * s.k);
      }
    }
    return absl::OkStatus();
  }

  // Paged attention: decode at batch 32 × 2048 context (the bandwidth target), smaller batches,
  // and a 2048-token prefill.
  absl::Status Attention() {
    const int64_t block_size = 16;
    struct Case {
      const char* what;
      int64_t seqs, context, queries;
      DType cache;
    };
    const std::vector<Case> cases = {
        {"decode", 32, 2048, 1, DType::kBF16}, {"decode", 32, 2048, 1, DType::kF32},
        {"decode", 8, 2048, 1, DType::kBF16},  {"decode", 1, 8192, 1, DType::kBF16},
        {"decode", 128, 512, 1, DType::kBF16}, {"prefill", 1, 2048, 2048, DType::kBF16}};
    for (const Case& c : cases) {
      const int64_t blocks_per_seq = (c.context + block_size - 1) / block_size;
      const int64_t num_blocks = c.seqs * blocks_per_seq;
      LOOM_ASSIGN_OR_RETURN(Tensor k_cache,
                            Random(c.cache, {num_blocks, block_size, kKvHeads, kHeadDim}));
      LOOM_ASSIGN_OR_RETURN(Tensor v_cache,
                            Random(c.cache, {num_blocks, block_size, kKvHeads, kHeadDim}));
      // Blocks handed out in a scattered order, as a long-running cache would.
      std::vector<int32_t> order(num_blocks);
      std::iota(order.begin(), order.end(), 0);
      for (int64_t i = 0; i < num_blocks; ++i) std::swap(order[i], order[(i * 7919) % num_blocks]);
      AttentionBatch batch;
      batch.query_start.push_back(0);
      for (int64_t s = 0; s < c.seqs; ++s) {
        batch.block_tables.emplace_back(order.begin() + s * blocks_per_seq,
                                        order.begin() + (s + 1) * blocks_per_seq);
        batch.context_len.push_back(static_cast<int32_t>(c.context));
        batch.query_start.push_back(batch.query_start.back() + static_cast<int32_t>(c.queries));
      }
      const int64_t tokens = batch.query_start.back();
      LOOM_ASSIGN_OR_RETURN(Tensor qkv,
                            Random(DType::kF32, {tokens, kHeads + 2 * kKvHeads, kHeadDim}));
      LOOM_ASSIGN_OR_RETURN(Tensor q, qkv.Slice(1, 0, kHeads));
      LOOM_ASSIGN_OR_RETURN(Tensor out,
                            AllocateDeviceTensor(DType::kF32, {tokens, kHeads, kHeadDim}));
      AttentionGeometry g;
      g.tokens = tokens;
      g.q_heads = kHeads;
      g.kv_heads = kKvHeads;
      g.head_dim = kHeadDim;
      g.num_blocks = num_blocks;
      g.block_size = block_size;
      g.cache_dtype = c.cache;
      LOOM_ASSIGN_OR_RETURN(PagedAttentionPlan plan, PlanPagedAttention(ctx_, batch, g));
      LOOM_ASSIGN_OR_RETURN(const double us, TimeUs(Reps(c.queries > 1 ? 10 : 50), [&](int) {
                              return PagedAttention(ctx_, q, k_cache, v_cache, plan, 0.088f, 0, out);
                            }));
      // Keys visited: every query row sees its position + 1 keys (causal).
      double visits = 0;
      for (int64_t i = 0; i < c.queries; ++i) visits += c.context - c.queries + i + 1;
      visits *= c.seqs;
      const double kv_bytes =
          2.0 * c.seqs * c.context * kKvHeads * kHeadDim * static_cast<double>(DTypeSize(c.cache));
      const double io_bytes = 4.0 * 2 * tokens * kHeads * kHeadDim;
      const double flops = 4.0 * visits * kHeads * kHeadDim;
      Add(absl::StrFormat("PagedAttention %s %s cache", c.what, DTypeName(c.cache)),
          absl::StrFormat("B=%d ctx=%d q=%d, %d parts", c.seqs, c.context, c.queries,
                          plan.num_partitions()),
          us, kv_bytes + io_bytes, c.queries > 1 ? flops : 0.0);
    }
    return absl::OkStatus();
  }

  // The memory-bound layer kernels at decode (32 rows) and prefill (4096 rows) sizes.
  absl::Status Elementwise() {
    LOOM_ASSIGN_OR_RETURN(Tensor embed, Random(DType::kBF16, {kVocab, kHidden}));
    for (int64_t t : {32, 4096}) {
      const std::string rows = absl::StrFormat("T=%d", t);
      LOOM_ASSIGN_OR_RETURN(Tensor x, Random(DType::kF32, {t, kHidden}));
      LOOM_ASSIGN_OR_RETURN(Tensor residual, Random(DType::kF32, {t, kHidden}));
      LOOM_ASSIGN_OR_RETURN(Tensor weight, Random(DType::kF32, {kHidden}, 0.5f, 1.5f));
      LOOM_ASSIGN_OR_RETURN(Tensor out, AllocateDeviceTensor(DType::kF32, {t, kHidden}));
      LOOM_ASSIGN_OR_RETURN(
          double us, TimeUs(Reps(100), [&](int) { return RmsNorm(ctx_, x, weight, 1e-6f, out); }));
      Add("RmsNorm", rows + " H=1024", us, 8.0 * t * kHidden, 0);
      LOOM_ASSIGN_OR_RETURN(us, TimeUs(Reps(100), [&](int) {
                              return FusedAddRmsNorm(ctx_, x, residual, weight, 1e-6f);
                            }));
      Add("FusedAddRmsNorm", rows + " H=1024", us, 16.0 * t * kHidden, 0);

      LOOM_ASSIGN_OR_RETURN(Tensor gate_up, Random(DType::kF32, {t, 2 * kInter}));
      LOOM_ASSIGN_OR_RETURN(Tensor act, AllocateDeviceTensor(DType::kF32, {t, kInter}));
      LOOM_ASSIGN_OR_RETURN(us,
                            TimeUs(Reps(100), [&](int) { return SiluAndMul(ctx_, gate_up, act); }));
      Add("SiluAndMul", rows + " I=3072", us, 12.0 * t * kInter, 0);

      LOOM_ASSIGN_OR_RETURN(Tensor qkv, Random(DType::kF32, {t, kHeads + 2 * kKvHeads, kHeadDim}));
      LOOM_ASSIGN_OR_RETURN(Tensor q, qkv.Slice(1, 0, kHeads));
      LOOM_ASSIGN_OR_RETURN(Tensor k, qkv.Slice(1, kHeads, kKvHeads));
      LOOM_ASSIGN_OR_RETURN(Tensor v, qkv.Slice(1, kHeads + kKvHeads, kKvHeads));
      LOOM_ASSIGN_OR_RETURN(Tensor table, MakeRopeCosSin(kHeadDim, 1e6, RopeScalingConfig{}, 4096));
      LOOM_ASSIGN_OR_RETURN(Tensor cos_sin, Device(table));
      Tensor positions_host = Tensor::Empty(DType::kI32, {t});
      for (int64_t i = 0; i < t; ++i) positions_host.data<int32_t>()[i] = static_cast<int32_t>(i);
      LOOM_ASSIGN_OR_RETURN(Tensor positions, Device(positions_host));
      LOOM_ASSIGN_OR_RETURN(
          us, TimeUs(Reps(100), [&](int) { return ApplyRope(ctx_, q, k, positions, cos_sin); }));
      Add("ApplyRope", rows + " Hq=16 Hk=8 D=128", us,
          (8.0 + 4.0) * t * (kHeads + kKvHeads) * kHeadDim, 0);

      // The KV cache write into a bf16 cache, at scattered slots.
      const int64_t slots = 4 * t;
      LOOM_ASSIGN_OR_RETURN(
          Tensor k_cache, AllocateDeviceTensor(DType::kBF16, {slots / 16, 16, kKvHeads, kHeadDim}));
      LOOM_ASSIGN_OR_RETURN(
          Tensor v_cache, AllocateDeviceTensor(DType::kBF16, {slots / 16, 16, kKvHeads, kHeadDim}));
      Tensor mapping_host = Tensor::Empty(DType::kI64, {t});
      for (int64_t i = 0; i < t; ++i) mapping_host.data<int64_t>()[i] = (i * 2654435761) % slots;
      LOOM_ASSIGN_OR_RETURN(Tensor mapping, Device(mapping_host));
      LOOM_ASSIGN_OR_RETURN(us, TimeUs(Reps(100), [&](int) {
                              return WriteKvCache(ctx_, k, v, mapping, k_cache, v_cache);
                            }));
      Add("WriteKvCache bf16 cache", rows + " Hk=8 D=128", us,
          (4.0 + 2.0) * 2 * t * kKvHeads * kHeadDim, 0);

      Tensor ids_host = Tensor::Empty(DType::kI32, {t});
      for (int64_t i = 0; i < t; ++i) {
        ids_host.data<int32_t>()[i] = static_cast<int32_t>((i * 48271) % kVocab);
      }
      LOOM_ASSIGN_OR_RETURN(Tensor ids, Device(ids_host));
      LOOM_ASSIGN_OR_RETURN(
          us, TimeUs(Reps(100), [&](int) { return Embedding(ctx_, ids, embed, 0, out); }));
      Add("Embedding bf16 table", rows + " H=1024", us, (2.0 + 4.0) * t * kHidden, 0);
    }
    return absl::OkStatus();
  }

  // Sampling at batch 32 over the full vocabulary; each call waits for its tokens, so this is
  // wall-clock time per call, transfers included.
  absl::Status Sampling() {
    const int64_t batch = 32;
    LOOM_ASSIGN_OR_RETURN(Tensor logits, Random(DType::kF32, {batch, kVocab}, -8.0f, 8.0f));
    struct Case {
      const char* name;
      SamplingParams params;
    };
    const std::vector<Case> cases = {{"greedy", SamplingParams{}},
                                     {"temperature 0.8", SamplingParams{0.8f, 0, 1.0f, 1}},
                                     {"top-k 50", SamplingParams{0.8f, 50, 1.0f, 1}},
                                     {"top-p 0.9", SamplingParams{0.8f, 0, 0.9f, 1}},
                                     {"top-k 50 + top-p 0.9", SamplingParams{0.8f, 50, 0.9f, 1}}};
    for (const Case& c : cases) {
      std::vector<SamplingParams> params(batch, c.params);
      std::vector<uint64_t> steps(batch, 0);
      auto run = [&]() { return Sample(ctx_, logits, params, steps).status(); };
      LOOM_RETURN_IF_ERROR(run());
      const int reps = Reps(30);
      const auto t0 = std::chrono::steady_clock::now();
      for (int i = 0; i < reps; ++i) LOOM_RETURN_IF_ERROR(run());
      const double us =
          std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() /
          reps;
      Add(absl::StrFormat("Sample %s", c.name), "B=32 V=151936", us, 4.0 * batch * kVocab, 0);
    }
    return absl::OkStatus();
  }

  void Print(const cudaDeviceProp& prop) const {
    std::printf("\n## CUDA kernels on %s (%d SMs)\n\n", prop.name, prop.multiProcessorCount);
    std::printf(
        "Ceilings measured in this run: device copy %.0f GB/s (read + write), "
        "cuBLAS bf16 GEMM %.1f TFLOP/s.\n\n",
        ceilings_.copy_gbps, ceilings_.gemm_tflops);
    std::printf("| kernel | shape | time (us) | GB/s | TFLOP/s | of roofline |\n");
    std::printf("|---|---|---:|---:|---:|---:|\n");
    for (const Row& r : rows_) {
      const double seconds = r.us * 1e-6;
      const double roofline =
          std::max(r.bytes / (ceilings_.copy_gbps * 1e9), r.flops / (ceilings_.gemm_tflops * 1e12));
      std::printf("| %s | %s | %.1f | %.0f | %s | %.0f%% |\n", r.kernel.c_str(), r.shape.c_str(),
                  r.us, r.bytes / seconds / 1e9,
                  r.flops > 0 ? absl::StrFormat("%.1f", r.flops / seconds / 1e12).c_str() : "-",
                  100.0 * roofline / seconds);
    }
    std::printf(
        "\nGB/s counts bytes read + written once each (weights, KV cache, activations);\n"
        "\"of roofline\" is max(bytes / copy bandwidth, flops / GEMM rate) over the time.\n");
  }

 private:
  DeviceContext& ctx_;
  bool quick_;
  uint64_t seed_ = 0;
  Ceilings ceilings_;
  std::vector<Row> rows_;
};

int Main(int argc, char** argv) {
  absl::StatusOr<cli::Flags> flags = cli::Flags::Parse(argc, argv, 1, {{"quick", true}});
  if (!flags.ok() || !flags->positional().empty()) {
    if (!flags.ok()) {
      std::fprintf(stderr, "loom-bench-cuda-kernels: %s\n",
                   std::string(flags.status().message()).c_str());
    }
    std::fprintf(stderr, "usage: %s [--quick]\n", argv[0]);
    return 1;
  }
  const bool quick = flags->Bool("quick");
  int count = 0;
  const cudaError_t error = cudaGetDeviceCount(&count);
  if (error != cudaSuccess || count == 0) {
    std::fprintf(stderr,
                 "loom-bench-cuda-kernels: no CUDA device (%s); nothing to measure here. Run it "
                 "on a GPU machine, e.g. through tools/gpu_check.sh.\n",
                 error != cudaSuccess ? cudaGetErrorString(error) : "0 devices");
    return 2;
  }
  absl::StatusOr<std::unique_ptr<DeviceContext>> context = DeviceContext::Create();
  if (!context.ok()) {
    std::fprintf(stderr, "loom-bench-cuda-kernels: %s\n", context.status().ToString().c_str());
    return 1;
  }
  cudaDeviceProp prop;
  if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess) std::strcpy(prop.name, "?");
  Bench bench(**context, quick);
  for (auto step : {&Bench::MeasureCeilings, &Bench::Linears, &Bench::Attention,
                    &Bench::Elementwise, &Bench::Sampling}) {
    const absl::Status status = (bench.*step)();
    if (!status.ok()) {
      std::fprintf(stderr, "loom-bench-cuda-kernels: %s\n", status.ToString().c_str());
      return 1;
    }
  }
  bench.Print(prop);
  return 0;
}

}  // namespace
}  // namespace loom::kernels::cuda

int main(int argc, char** argv) { return loom::kernels::cuda::Main(argc, argv); }
