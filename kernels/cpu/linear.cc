// Linear layer: out = x · wᵀ (+ bias), with f32, bf16 or f16 weights and f32 activations.
//
// Two paths, picked by the number of activation rows (tools/bench_kernels.cc measures both):
//  - few rows (decode): a streaming kernel reads each weight row once, widens it to f32 in
//    registers and accumulates against every activation row while the row is in L1. Decode is
//    bound by weight bytes, so reading half the bytes of an f32 copy is the whole point for
//    16-bit weights; f32 weights stream too, as sgemm packs its operands first and reaches
//    a fraction of the read bandwidth with one or a few rows.
//  - many rows (prefill): compute dominates, so blocks of 16-bit weight rows are widened into a
//    scratch buffer and handed to sgemm (f32 weights directly), whose blocking beats a
//    hand-written loop of FMAs. Not for bf16 weights on a CPU with AMX tiles, whose kernel
//    (isa_amx.cc) beats sgemm at every row count.
// Both paths accumulate in f32; neither rounds the activations to bf16. The inner loops are
// those of the CPU's instruction set (isa_kernels.h); this file threads and blocks them.
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "kernels/checks.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/isa_kernels.h"
#include "kernels/cpu/linear16.h"

namespace loom::kernels {
namespace {

// Weight rows widened per sgemm call on the prefill path: 128 rows of K=1024 are 512 KiB of f32,
// enough for sgemm to reach full speed and small enough to stay in a core's L2.
constexpr int64_t kPrefillBlockRows = 128;

// out[M, n] (row stride ldo) = x[M, K] · w[n, K]ᵀ through BLAS.
void Sgemm(const float* x, int64_t M, const float* w, int64_t n, int64_t K, float* out,
           int64_t ldo) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(M), static_cast<int>(n),
              static_cast<int>(K), 1.0f, x, static_cast<int>(K), w, static_cast<int>(K), 0.0f, out,
              static_cast<int>(ldo));
}

// Runs fn(n_begin, n_end) over slices of the N output columns. OpenMP's threads and OpenBLAS's
// own pool fight for the cores when both are active: each spins after its work, so the other's
// threads wait for a scheduler tick (measured: 10x slowdowns on 2 cores). When OpenBLAS is
// single-threaded (kernels::SetNumThreads should keep it so), the columns are split over the
// OpenMP threads and each calls the single-threaded BLAS on its own slice; otherwise one call
// covers everything and OpenBLAS parallelises inside it.
template <typename Fn>
void ForEachColumnSlice(int64_t M, int64_t N, int64_t K, Fn fn) {
  const int threads = omp_get_max_threads();
  // Below ~1 MFLOP per thread the fork costs more than it saves.
  const bool split = threads > 1 && openblas_get_num_threads() == 1 && !omp_in_parallel() &&
                     M * N * K >= int64_t{threads} * (int64_t{1} << 19) && N >= 32;
  if (!split) {
    fn(0, N);
    return;
  }
#pragma omp parallel num_threads(threads)
  {
    const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
    // Slices of whole 16-row panels keep sgemm's micro-kernel on full tiles.
    const int64_t panels = (N + 15) / 16;
    const int64_t begin = std::min(N, panels * t / nt * 16);
    const int64_t end = std::min(N, panels * (t + 1) / nt * 16);
    if (begin < end) fn(begin, end);
  }
}

// Runs fn(n_begin, n_end) over contiguous stretches of the N weight rows, one per OpenMP
// thread (prefetcher-friendly); tiny matrices stay on one thread so the fork costs nothing.
template <typename Fn>
void ForEachRowStretch(int64_t N, int64_t K, int64_t group, Fn fn) {
  if (N * K < (int64_t{1} << 16)) {
    fn(0, N);
    return;
  }
#pragma omp parallel
  {
    const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
    // Stretches of whole groups of rows keep every thread on full tiles.
    const int64_t groups = (N + group - 1) / group;
    const int64_t begin = std::min(N, groups * t / nt * group);
    const int64_t end = std::min(N, groups * (t + 1) / nt * group);
    if (begin < end) fn(begin, end);
  }
}

// The active table's kernel for weights of `dtype` (f32, f16, or else bf16).
const internal::LinearKernel& KernelFor(const internal::IsaKernels& isa, DType dtype) {
  return dtype == DType::kF32   ? isa.linear_f32
         : dtype == DType::kF16 ? isa.linear_f16
                                : isa.linear_bf16;
}

}  // namespace

namespace internal {

void LinearStreaming(DType dtype, const float* x, int64_t M, const void* w, int64_t N, int64_t K,
                     float* out) {
  const IsaKernels& isa = ActiveKernels();
  const LinearKernel& kernel = KernelFor(isa, dtype);
  LinearSlice slice{x, nullptr, w, out, M, N, K};
  if (kernel.packed && K >= kPackBlock) {
    // Kept per thread across calls: a fresh buffer of a few hundred KiB would be mapped and
    // faulted in on every call.
    thread_local std::vector<float> packed;
    packed.resize(static_cast<size_t>(isa.packed_floats(M, K)));
    isa.pack(x, M, K, packed.data());
    slice.packed = packed.data();
  }
  ForEachRowStretch(N, K, isa.row_group,
                    [&](int64_t n_begin, int64_t n_end) { kernel.rows(slice, n_begin, n_end); });
}

void Linear16Streaming(DType dtype, const float* x, int64_t M, const uint16_t* w, int64_t N,
                       int64_t K, float* out) {
  LinearStreaming(dtype == DType::kF16 ? DType::kF16 : DType::kBF16, x, M, w, N, K, out);
}

void Linear16Blocked(DType dtype, const float* x, int64_t M, const uint16_t* w, int64_t N,
                     int64_t K, float* out) {
  const IsaKernels& isa = ActiveKernels();
  auto* widen = dtype == DType::kF16 ? isa.widen_f16 : isa.widen_bf16;
  ForEachColumnSlice(M, N, K, [&](int64_t n_begin, int64_t n_end) {
    const int64_t block = std::min(n_end - n_begin, kPrefillBlockRows);
    std::vector<float> scratch(static_cast<size_t>(block * K));
    for (int64_t n0 = n_begin; n0 < n_end; n0 += block) {
      const int64_t nb = std::min(block, n_end - n0);
      widen(w + n0 * K, nb * K, scratch.data());
      Sgemm(x, M, scratch.data(), nb, K, out + n0, N);
    }
  });
}

}  // namespace internal

absl::Status cpu::Linear(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& out) {
  LOOM_RETURN_IF_ERROR(internal::CheckLinear(x, w, bias, out));
  const int64_t M = x.size(0), K = x.size(1), N = w.size(0);
  if (M == 0 || N == 0) return absl::OkStatus();
  const float* xp = x.data<float>();
  float* op = out.data<float>();
  if (K == 0) {
    std::fill(op, op + M * N, 0.0f);
  } else if (M <= KernelFor(internal::ActiveKernels(), w.dtype()).max_rows) {
    internal::LinearStreaming(w.dtype(), xp, M, w.raw_data(), N, K, op);
  } else if (w.dtype() == DType::kF32) {
    const float* wp = w.data<float>();
    ForEachColumnSlice(M, N, K, [&](int64_t n0, int64_t n1) {
      Sgemm(xp, M, wp + n0 * K, n1 - n0, K, op + n0, N);
    });
  } else {
    internal::Linear16Blocked(w.dtype(), xp, M, w.data<uint16_t>(), N, K, op);
  }
  if (bias != nullptr) {
    const float* b = bias->data<float>();
    for (int64_t m = 0; m < M; ++m) {
      float* row = op + m * N;
      for (int64_t n = 0; n < N; ++n) row[n] += b[n];
    }
  }
  return absl::OkStatus();
}

}  // namespace loom::kernels
