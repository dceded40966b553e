// SplitMix64 (Steele, Lea and Flood, 2014), the counter-based hash behind every generated value
// in Loom: dummy weights (worker/loader/dummy_source.cc), loom-make-model's random checkpoints
// and the sampler's uniform draws (kernels/cpu/sampling.cc and kernels/cuda/sampling.cu). One
// definition for host and device code, so the CPU and CUDA samplers and the weights generated
// by any rank stay bit-identical. Header-only and dependency-free: nvcc compiles it as it is.
#ifndef LOOM_COMMON_SPLITMIX64_H_
#define LOOM_COMMON_SPLITMIX64_H_

#include <cstdint>

#if defined(__CUDACC__)
#define LOOM_HOST_DEVICE __host__ __device__
#else
#define LOOM_HOST_DEVICE
#endif

namespace loom {

// The golden-ratio increment SplitMix64 adds before mixing; also a good stride for turning an
// element index into well-spread counters.
inline constexpr uint64_t kSplitMix64Gamma = 0x9e3779b97f4a7c15ull;

// The finaliser alone: a bijection of 64-bit words in which every input bit affects every output
// bit (mix64 variant 13 of Stafford's).
LOOM_HOST_DEVICE constexpr uint64_t SplitMix64Finalize(uint64_t x) {
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// One SplitMix64 step: the output for state `x` (the state advances by kSplitMix64Gamma).
LOOM_HOST_DEVICE constexpr uint64_t SplitMix64(uint64_t x) {
  return SplitMix64Finalize(x + kSplitMix64Gamma);
}

}  // namespace loom

#endif  // LOOM_COMMON_SPLITMIX64_H_
