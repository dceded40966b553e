// Token sampling on the GPU with the semantics of kernels/cpu/sampling.cc: greedy is an argmax
// with the lowest id winning ties; otherwise logits are divided by the temperature, cut to the
// top-k and then to the top-p nucleus in (score descending, id ascending) order, and one token is
// drawn with the same counter-based uniform number, a pure function of (seed, step).
//
// One block per row. Instead of sorting the vocabulary, each cut is found as a threshold on an
// order-preserving 32-bit key of the score: the largest key t whose "mass at or above t" (a count
// for top-k, a probability mass for top-p) still reaches the target, searched four bits at a
// time (8 passes over the row, each counting the mass above 16 candidate keys at once). Ties at
// the threshold are then kept lowest id first, which is exactly the sorted order's cut.
//
// Probability weights exp(z - zmax) (f32) are summed as 24.40 fixed-point integers: sums are
// exact and independent of the order of addition, so the cuts and the draw are deterministic
// and consistent with each other. Two differences from the CPU, neither visible in the
// distribution: weights below 2^-40 of the top token's count as zero, and the kept tokens are
// walked in id order for the draw (the CPU walks the sorted order when it cut), so a given
// (seed, step) can pick a different token than the CPU does, with the same probabilities.
#include <cuda_runtime.h>

#include <climits>
#include <cstdint>
#include <limits>

#include "common/splitmix64.h"
#include "kernels/cuda/device_util.cuh"
#include "kernels/cuda/launch.h"

namespace loom::kernels::cuda::internal {
namespace {

using u64 = unsigned long long;

constexpr int kThreads = 512;
constexpr int kWarps = kThreads / 32;
constexpr int kBins = 17;  // candidate thresholds prefix + (j << shift), j = 0..16
constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kFixedOne = 1099511627776.0f;  // 2^40

// The CPU's UniformFromCounter, bit for bit.
__device__ __forceinline__ double UniformFromCounter(uint64_t seed, uint64_t step) {
  const uint64_t h = SplitMix64(SplitMix64(seed) ^ (step * 0xd1b54a32d192ed03ull));
  return static_cast<double>(h >> 11) * 0x1.0p-53;
}

// a < b ⇔ Key(a) < Key(b) for non-NaN floats; -0 is folded into +0 first, since they compare
// equal as scores.
__device__ __forceinline__ uint32_t Key(float f) {
  if (f == 0.0f) f = 0.0f;
  const uint32_t b = __float_as_uint(f);
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

__device__ __forceinline__ float FromKey(uint32_t k) {
  return __uint_as_float((k & 0x80000000u) ? (k & 0x7fffffffu) : ~k);
}

// Sums v[0..N) over the block; every thread gets the sums.
template <int N>
__device__ __forceinline__ void BlockSum(u64 (&v)[N], u64* smem /* kWarps * N */) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
  for (int j = 0; j < N; ++j) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v[j] += __shfl_xor_sync(kFullMask, v[j], o);
  }
  if (lane == 0) {
#pragma unroll
    for (int j = 0; j < N; ++j) smem[warp * N + j] = v[j];
  }
  __syncthreads();
#pragma unroll
  for (int j = 0; j < N; ++j) {
    u64 x = lane < kWarps ? smem[lane * N + j] : 0;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(kFullMask, x, o);
    v[j] = x;
  }
  __syncthreads();
}

// The sum of v over the threads before this one (in thread order), and the block's total.
__device__ __forceinline__ u64 BlockExclusiveScan(u64 v, u64* smem /* kWarps */, u64* total) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  u64 x = v;
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    const u64 y = __shfl_up_sync(kFullMask, x, o);
    if (lane >= o) x += y;
  }
  if (lane == 31) smem[warp] = x;
  __syncthreads();
  const u64 w = lane < kWarps ? smem[lane] : 0;
  u64 wi = w;
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    const u64 y = __shfl_up_sync(kFullMask, wi, o);
    if (lane >= o) wi += y;
  }
  const u64 warp_before = __shfl_sync(kFullMask, wi - w, warp);
  *total = __shfl_sync(kFullMask, wi, 31);
  __syncthreads();
  return warp_before + x - v;
}

// The best (value, id) of the block: the largest value, the lowest id among equals.
__device__ __forceinline__ void BlockArgmax(float& v, long long& i, float* s_value,
                                            long long* s_id) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  auto merge = [&]() {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      const float ov = __shfl_xor_sync(kFullMask, v, o);
      const long long oi = __shfl_xor_sync(kFullMask, i, o);
      if (ov > v || (ov == v && oi < i)) {
        v = ov;
        i = oi;
      }
    }
  };
  merge();
  if (lane == 0) {
    s_value[warp] = v;
    s_id[warp] = i;
  }
  __syncthreads();
  if (lane < kWarps) {
    v = s_value[lane];
    i = s_id[lane];
  } else {
    v = -kInf;
    i = LLONG_MAX;
  }
  merge();
  __syncthreads();
}

// The largest key t with F(t) >= target, where F(t) sums `value` over the elements that `fn`
// admits with key >= t (non-increasing in t; F(0) >= target is the caller's promise). Also
// returns F(t) and F(t + 1).
template <typename Fn>
__device__ __forceinline__ uint32_t SearchThreshold(int64_t vocab, u64 target, Fn fn, u64* smem,
                                                    u64* at, u64* above) {
  uint32_t prefix = 0;
  for (int shift = 28; shift >= 0; shift -= 4) {
    // bins[j] = F(prefix + (j << shift)); the answer lies in [prefix, prefix + (16 << shift)).
    u64 bins[kBins];
#pragma unroll
    for (int j = 0; j < kBins; ++j) bins[j] = 0;
    for (int64_t i = threadIdx.x; i < vocab; i += kThreads) {
      uint32_t key;
      u64 value;
      if (!fn(i, key, value) || key < prefix) continue;
      const uint32_t rel = (key - prefix) >> shift;
      const uint32_t top = rel < 16u ? rel : 16u;
#pragma unroll
      for (int j = 0; j < kBins; ++j) bins[j] += top >= static_cast<uint32_t>(j) ? value : 0;
    }
    BlockSum<kBins>(bins, smem);
    // bins[0] >= target holds by induction, bins[16] < target likewise. F(best) and F(best + 1)
    // are carried along with constant indices, so that bins stays in registers.
    int best = 0;
    u64 f_best = bins[0], f_next = bins[1];
#pragma unroll
    for (int j = 1; j < 16; ++j) {
      if (bins[j] >= target) {
        best = j;
        f_best = bins[j];
        f_next = bins[j + 1];
      }
    }
    if (shift == 0) {
      *at = f_best;
      *above = f_next;
    }
    prefix += static_cast<uint32_t>(best) << shift;
  }
  return prefix;
}

// The need-th (1-based) id, in increasing order, among those `match` admits; LLONG_MAX when
// there are fewer.
template <typename Match>
__device__ __forceinline__ long long NthInIdOrder(int64_t vocab, u64 need, Match match, u64* s_scan,
                                                  long long* s_found) {
  const int64_t chunk = (vocab + kThreads - 1) / kThreads;
  const int64_t begin = min(vocab, threadIdx.x * chunk), end = min(vocab, begin + chunk);
  u64 mine = 0;
  for (int64_t i = begin; i < end; ++i) mine += match(i) ? 1 : 0;
  u64 total;
  const u64 before = BlockExclusiveScan(mine, s_scan, &total);
  if (threadIdx.x == 0) *s_found = LLONG_MAX;
  __syncthreads();
  if (before < need && need <= before + mine) {
    u64 left = need - before;
    for (int64_t i = begin; i < end; ++i) {
      if (match(i) && --left == 0) {
        *s_found = i;
        break;
      }
    }
  }
  __syncthreads();
  const long long found = *s_found;
  __syncthreads();
  return found;
}

__global__ void __launch_bounds__(kThreads)
    SampleKernel(const float* __restrict__ logits, int64_t vocab,
                 const SampleRowParams* __restrict__ params, int32_t* tokens, int32_t* codes) {
  __shared__ u64 s_bins[kWarps * kBins];
  __shared__ u64 s_scan[kWarps];
  __shared__ float s_value[kWarps];
  __shared__ long long s_id[kWarps];
  __shared__ long long s_found;

  const int64_t row = blockIdx.x;
  const float* x = logits + row * vocab;
  const SampleRowParams p = params[row];
  const int tid = threadIdx.x;
  auto finish = [&](long long token, int32_t code) {
    if (tid == 0) {
      tokens[row] = static_cast<int32_t>(token);
      codes[row] = code;
    }
  };

  // Argmax of the raw logits, and NaN detection (the CPU rejects a row with any NaN).
  float best = -kInf;
  long long top = LLONG_MAX;
  bool nan = false;
  for (int64_t i = tid; i < vocab; i += kThreads) {
    const float v = x[i];
    if (v != v) {
      nan = true;
    } else if (v > best || (v == best && i < top)) {
      best = v;
      top = i;
    }
  }
  if (__syncthreads_or(nan)) {
    finish(0, kSampleNaN);
    return;
  }
  BlockArgmax(best, top, s_value, s_id);
  if (p.temperature == 0.0f || best == kInf) {
    finish(top, kSampleOk);
    return;
  }
  if (best == -kInf) {
    finish(top, kSampleAllNegInf);
    return;
  }
  const float temperature = p.temperature;
  const float zmax = best / temperature;
  // +inf: a huge logit over a tiny temperature takes all the mass, as on the CPU. -inf (a
  // hugely negative best logit over a tiny temperature) leaves no finite weights; the CPU's
  // result is then undefined, here it is the argmax.
  if (isinf(zmax)) {
    finish(top, kSampleOk);
    return;
  }
  auto score = [&](int64_t i) { return x[i] / temperature; };
  auto weight = [&](float z) { return static_cast<u64>(expf(z - zmax) * kFixedOne); };

  // Top-k: keep the keys above k_key, and the ties at k_key up to id k_cut.
  uint32_t k_key = 0;
  long long k_cut = LLONG_MAX;
  if (p.top_k > 0 && p.top_k < vocab) {
    u64 at = 0, above = 0;
    k_key = SearchThreshold(
        vocab, static_cast<u64>(p.top_k),
        [&](int64_t i, uint32_t& key, u64& value) {
          key = Key(score(i));
          value = 1;
          return true;
        },
        s_bins, &at, &above);
    k_cut = NthInIdOrder(
        vocab, static_cast<u64>(p.top_k) - above, [&](int64_t i) { return Key(score(i)) == k_key; },
        s_scan, &s_found);
  }
  auto kept_by_k = [&](int64_t i, uint32_t key) {
    return key > k_key || (key == k_key && i <= k_cut);
  };

  // Top-p over what top-k kept: the smallest prefix of the sorted order whose mass reaches
  // top_p of the kept mass.
  uint32_t p_key = 0;
  long long p_cut = LLONG_MAX;
  if (p.top_p < 1.0f) {
    u64 kept_mass[1] = {0};
    for (int64_t i = tid; i < vocab; i += kThreads) {
      const float z = score(i);
      if (kept_by_k(i, Key(z))) kept_mass[0] += weight(z);
    }
    BlockSum<1>(kept_mass, s_bins);
    const double wanted = static_cast<double>(p.top_p) * static_cast<double>(kept_mass[0]);
    u64 target = static_cast<u64>(ceil(wanted));
    target = target < 1 ? 1 : (target > kept_mass[0] ? kept_mass[0] : target);
    u64 at = 0, above = 0;
    p_key = SearchThreshold(
        vocab, target,
        [&](int64_t i, uint32_t& key, u64& value) {
          const float z = score(i);
          key = Key(z);
          if (!kept_by_k(i, key)) return false;
          value = weight(z);
          return true;
        },
        s_bins, &at, &above);
    // Every tie at p_key weighs the same; keep as few (lowest ids first) as reach the target.
    const u64 tie = weight(FromKey(p_key));
    const u64 need = tie == 0 ? 1 : (target - above + tie - 1) / tie;
    p_cut = NthInIdOrder(
        vocab, need,
        [&](int64_t i) {
          const uint32_t key = Key(score(i));
          return key == p_key && kept_by_k(i, key);
        },
        s_scan, &s_found);
  }
  auto kept = [&](int64_t i, uint32_t key) {
    return kept_by_k(i, key) && (key > p_key || (key == p_key && i <= p_cut));
  };

  // The draw: the kept weights laid end to end in id order, u picks the first whose running
  // sum exceeds it.
  const int64_t chunk = (vocab + kThreads - 1) / kThreads;
  const int64_t begin = min(vocab, tid * chunk), end = min(vocab, begin + chunk);
  u64 mine = 0;
  for (int64_t i = begin; i < end; ++i) {
    const float z = score(i);
    if (kept(i, Key(z))) mine += weight(z);
  }
  u64 total = 0;
  const u64 before = BlockExclusiveScan(mine, s_scan, &total);
  if (tid == 0) s_found = top;
  __syncthreads();
  if (total > 0) {
    const double scaled = UniformFromCounter(p.seed, p.step) * static_cast<double>(total);
    const u64 u = scaled >= static_cast<double>(total) ? total - 1 : static_cast<u64>(scaled);
    if (before <= u && u < before + mine) {
      u64 running = before;
      for (int64_t i = begin; i < end; ++i) {
        const float z = score(i);
        if (!kept(i, Key(z))) continue;
        running += weight(z);
        if (u < running) {
          s_found = i;
          break;
        }
      }
    }
  }
  __syncthreads();
  finish(s_found, kSampleOk);
}

}  // namespace

cudaError_t LaunchSample(const float* logits, int64_t rows, int64_t vocab,
                         const SampleRowParams* params, int32_t* tokens, int32_t* codes,
                         cudaStream_t stream) {
  if (rows <= 0) return cudaSuccess;
  SampleKernel<<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(logits, vocab, params, tokens,
                                                                     codes);
  return cudaGetLastError();
}

}  // namespace loom::kernels::cuda::internal
