// Times Linear on Qwen3-0.6B-like projection shapes, f32 weights through sgemm against bf16
// weights through each bf16 path, next to memory-bandwidth baselines measured in the same run.
// Decode reads every weight once per token, so the weight bytes per second against the memcpy
// and pure-read bandwidth say how close a path is to the roofline.
//
// Weights are replicated into enough copies to overflow the last-level cache and the copies are
// cycled, so a small matrix is timed from DRAM as it would be inside a whole model's forward.
//
// Usage: loom-bench-kernels [--quick] [--blas-threads=N]
//   --blas-threads: OpenBLAS's own pool size (default 1: OpenMP owns the cores and Linear splits
//   sgemm calls over its threads; N > 1 lets OpenBLAS parallelise inside each call instead).
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "common/flags.h"
#include "common/tensor.h"
#include "kernels/cpu/linear16.h"
#include "kernels/kernels.h"
#include "kernels/threading.h"

namespace loom::kernels {
namespace {

// Enough to overflow a 32 MiB L3 several times over.
constexpr size_t kColdBytes = size_t{192} << 20;

double Seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

struct Timing {
  double median, best;  // seconds
};

// Median and fastest of `reps` runs of fn(i), after one warm-up. The fastest is printed too
// because on a shared 2-core machine a descheduled OpenMP thread stalls a whole call for a
// scheduler tick; the median shows what a loaded machine gives, the best what the code can do.
Timing Time(int reps, const std::function<void(int)>& fn) {
  fn(0);
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    const double t0 = Seconds();
    fn(i + 1);
    t.push_back(Seconds() - t0);
  }
  std::sort(t.begin(), t.end());
  return {t[t.size() / 2], t[0]};
}

// Bytes copied per second by memcpy over a buffer far larger than the caches, split across the
// OpenMP threads like the kernels are.
double MemcpyGBps() {
  const size_t n = size_t{256} << 20;
  std::vector<char> src(n, 1), dst(n, 0);
  const double s = Time(7, [&](int) {
#pragma omp parallel
                     {
                       const size_t threads = omp_get_num_threads(), id = omp_get_thread_num();
                       const size_t chunk = (n + threads - 1) / threads,
                                    b = std::min(n, id * chunk), e = std::min(n, b + chunk);
                       std::memcpy(dst.data() + b, src.data() + b, e - b);
                     }
                   }).best;
  return n / s / 1e9;
}

// Bytes read per second (an integer sum, nothing written): the roofline for streaming weights.
double ReadGBps() {
  const size_t n = (size_t{256} << 20) / sizeof(uint64_t);
  std::vector<uint64_t> src(n, 1);
  volatile uint64_t sink = 0;
  const double s = Time(7, [&](int) {
                     uint64_t total = 0;
#pragma omp parallel for reduction(+ : total) schedule(static)
                     for (size_t i = 0; i < n; ++i) total += src[i];
                     sink = total;
                   }).best;
  (void)sink;
  return n * sizeof(uint64_t) / s / 1e9;
}

struct Shape {
  const char* name;
  int64_t n, k;
};

// Rates are from the median; "best" columns from the fastest run.
void Print(const char* shape, int64_t m, const char* path, size_t weight_bytes, double flops,
           Timing t, double memcpy_gbps) {
  const double gbps = weight_bytes / t.median / 1e9, best_gbps = weight_bytes / t.best / 1e9;
  std::printf("%-12s %4ld  %-16s %9.3f %9.3f %8.2f %8.1f %8.2f %9.2f %8.2f\n", shape,
              static_cast<long>(m), path, t.median * 1e3, t.best * 1e3, gbps,
              flops / t.median / 1e9, gbps / memcpy_gbps, best_gbps, best_gbps / memcpy_gbps);
  std::fflush(stdout);
}

void BenchShape(const Shape& shape, const std::vector<int64_t>& ms, int reps, double memcpy_gbps,
                std::mt19937& rng) {
  const int64_t n = shape.n, k = shape.k;
  const size_t f32_bytes = n * k * 4, bf16_bytes = n * k * 2;
  const int copies_f32 = static_cast<int>(std::max<size_t>(1, kColdBytes / f32_bytes));
  const int copies_bf16 = static_cast<int>(std::max<size_t>(1, kColdBytes / bf16_bytes));
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<Tensor> w32, w16, wf16;
  {
    Tensor base = Tensor::Empty(DType::kF32, {n, k});
    for (int64_t i = 0; i < n * k; ++i) base.data<float>()[i] = dist(rng);
    for (int c = 0; c < copies_f32; ++c) w32.push_back(base.Clone());
    Tensor half = *base.To(DType::kBF16);
    for (int c = 0; c < copies_bf16; ++c) w16.push_back(half.Clone());
    Tensor f16 = *base.To(DType::kF16);
    for (int c = 0; c < copies_bf16; ++c) wf16.push_back(f16.Clone());
  }
  for (int64_t m : ms) {
    Tensor x = Tensor::Empty(DType::kF32, {m, k});
    for (int64_t i = 0; i < m * k; ++i) x.data<float>()[i] = dist(rng);
    Tensor out = Tensor::Empty(DType::kF32, {m, n});
    const double flops = 2.0 * m * n * k;
    auto report = [&](const char* path, size_t wbytes, Timing t) {
      Print(shape.name, m, path, wbytes, flops, t, memcpy_gbps);
    };
    report("f32 sgemm", f32_bytes, Time(reps, [&](int i) {
             (void)Linear(HostContext(), x, w32[i % copies_f32], nullptr, out);
           }));
    report("bf16 Linear", bf16_bytes, Time(reps, [&](int i) {
             (void)Linear(HostContext(), x, w16[i % copies_bf16], nullptr, out);
           }));
    report("f16 Linear", bf16_bytes, Time(reps, [&](int i) {
             (void)Linear(HostContext(), x, wf16[i % copies_bf16], nullptr, out);
           }));
    report("bf16 streaming", bf16_bytes, Time(reps, [&](int i) {
             internal::Linear16Streaming(DType::kBF16, x.data<float>(), m,
                                         w16[i % copies_bf16].data<uint16_t>(), n, k,
                                         out.data<float>());
           }));
    report("bf16 block+sgemm", bf16_bytes, Time(reps, [&](int i) {
             internal::Linear16Blocked(DType::kBF16, x.data<float>(), m,
                                       w16[i % copies_bf16].data<uint16_t>(), n, k,
                                       out.data<float>());
           }));
  }
}

// Paged attention with Qwen3-0.6B heads (16 query, 8 KV, head_dim 128), block size 16: KV bytes
// read per second for decode, GFLOP/s for prefill.
void BenchAttention(int64_t seqs, int64_t context, int64_t queries, int reps, double memcpy_gbps) {
  const int64_t hq = 16, hk = 8, d = 128, bs = 16;
  const int64_t blocks_per_seq = (context + bs - 1) / bs;
  const int64_t num_blocks = seqs * blocks_per_seq;
  Tensor k_cache = Tensor::Empty(DType::kF32, {num_blocks, bs, hk, d});
  Tensor v_cache = Tensor::Empty(DType::kF32, {num_blocks, bs, hk, d});
  std::mt19937 rng(2);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  for (int64_t i = 0; i < k_cache.numel(); ++i) {
    k_cache.data<float>()[i] = dist(rng);
    v_cache.data<float>()[i] = dist(rng);
  }
  AttentionBatch batch;
  batch.query_start.push_back(0);
  std::vector<int32_t> ids(num_blocks);
  for (int64_t i = 0; i < num_blocks; ++i) ids[i] = static_cast<int32_t>(i);
  std::shuffle(ids.begin(), ids.end(), rng);
  for (int64_t s = 0; s < seqs; ++s) {
    batch.block_tables.emplace_back(ids.begin() + s * blocks_per_seq,
                                    ids.begin() + (s + 1) * blocks_per_seq);
    batch.context_len.push_back(static_cast<int32_t>(context));
    batch.query_start.push_back(static_cast<int32_t>((s + 1) * queries));
  }
  Tensor q = Tensor::Empty(DType::kF32, {seqs * queries, hq, d});
  for (int64_t i = 0; i < q.numel(); ++i) q.data<float>()[i] = dist(rng);
  Tensor out = Tensor::Empty(DType::kF32, {seqs * queries, hq, d});
  const Timing t = Time(reps, [&](int) {
    (void)PagedAttention(HostContext(), q, k_cache, v_cache, batch, 0.088f, 0, out);
  });
  const double s = t.median;
  // Keys attended per query row, summed: the causal triangle for prefill.
  double pairs = 0;
  for (int64_t i = 0; i < queries; ++i) pairs += context - queries + i + 1;
  pairs *= seqs;
  const double kv_bytes = 2.0 * seqs * context * hk * d * 4;
  const double flops = 4.0 * pairs * hq * d;
  std::printf(
      "attention B=%ld ctx=%ld new=%ld: %8.3f ms (best %.3f)  KV %6.2f GB/s (%.2f of "
      "memcpy)  %6.1f GFLOP/s\n",
      static_cast<long>(seqs), static_cast<long>(context), static_cast<long>(queries), s * 1e3,
      t.best * 1e3, kv_bytes / s / 1e9, kv_bytes / s / 1e9 / memcpy_gbps, flops / s / 1e9);
}

int Main(int argc, char** argv) {
  absl::StatusOr<cli::Flags> flags =
      cli::Flags::Parse(argc, argv, 1, {{"quick", true}, {"blas-threads"}});
  absl::StatusOr<int64_t> blas_threads_flag =
      flags.ok() ? flags->Int("blas-threads", 1) : flags.status();
  if (!blas_threads_flag.ok() || !flags->positional().empty()) {
    if (!blas_threads_flag.ok()) {
      std::fprintf(stderr, "loom-bench-kernels: %s\n",
                   std::string(blas_threads_flag.status().message()).c_str());
    }
    std::fprintf(stderr, "usage: loom-bench-kernels [--quick] [--blas-threads=N]\n");
    return 2;
  }
  const bool quick = flags->Bool("quick");
  const int blas_threads = static_cast<int>(std::max<int64_t>(1, *blas_threads_flag));
  SetNumThreads(NumThreads(), blas_threads);
  std::printf("OpenMP threads: %d, OpenBLAS threads: %d (bf16 Linear streams at M <= %ld)\n",
              NumThreads(), NumBlasThreads(), static_cast<long>(internal::kLinearStreamingMaxRows));
  const double memcpy_gbps = MemcpyGBps();
  const double read_gbps = ReadGBps();
  std::printf("memcpy: %.2f GB/s copied   pure read: %.2f GB/s   (fastest of 7, 256 MiB)\n",
              memcpy_gbps, read_gbps);
  std::printf("weights cycled through copies totalling >= %zu MiB (cold in L3)\n\n",
              kColdBytes >> 20);
  std::printf("%-12s %4s  %-16s %9s %9s %8s %8s %8s %9s %8s\n", "shape NxK", "M", "path", "ms med",
              "ms best", "wGB/s", "GFLOP/s", "/memcpy", "best GB/s", "/memcpy");
  std::mt19937 rng(1);
  const std::vector<int64_t> ms =
      quick ? std::vector<int64_t>{1, 8} : std::vector<int64_t>{1, 4, 8, 16, 32, 128};
  const int reps = quick ? 5 : 11;
  for (const Shape& s : {Shape{"1024x1024", 1024, 1024}, Shape{"3072x1024", 3072, 1024},
                         Shape{"4096x1024", 4096, 1024}}) {
    BenchShape(s, ms, reps, memcpy_gbps, rng);
  }
  // The lm_head is 311 MB in bf16: few repeats keep the whole run under a minute.
  BenchShape(Shape{"151936x1024", 151936, 1024},
             quick ? std::vector<int64_t>{1} : std::vector<int64_t>{1, 8, 32}, 3, memcpy_gbps, rng);
  std::printf("\n");
  BenchAttention(1, 4096, 1, quick ? 3 : 11, memcpy_gbps);
  BenchAttention(8, 1024, 1, quick ? 3 : 11, memcpy_gbps);
  BenchAttention(1, 512, 512, 3, memcpy_gbps);
  return 0;
}

}  // namespace
}  // namespace loom::kernels

int main(int argc, char** argv) { return loom::kernels::Main(argc, argv); }
