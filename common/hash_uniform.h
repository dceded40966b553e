// The value of a generated weight: element `index` of the tensor keyed by `key` is a uniform
// value in [-range, range] from one SplitMix64 step at the key plus index × gamma. One definition
// for host and device code, so dummy weights generated on any device, by any rank of any TP size,
// are bit-identical (worker/loader/dummy_source.cc, kernels::FillHashUniform).
#ifndef LOOM_COMMON_HASH_UNIFORM_H_
#define LOOM_COMMON_HASH_UNIFORM_H_

#include <cstdint>

#include "common/splitmix64.h"

namespace loom {

LOOM_HOST_DEVICE inline float HashUniform(uint64_t key, int64_t index, double range) {
  const uint64_t bits = SplitMix64(key + static_cast<uint64_t>(index) * kSplitMix64Gamma);
  const double u = static_cast<double>(bits >> 11) * 0x1.0p-53;  // [0, 1), exact
  // 2u - 1 is exact, so a fused multiply-add gives the same double; the product is one rounding.
  return static_cast<float>((2 * u - 1) * range);
}

}  // namespace loom

#endif  // LOOM_COMMON_HASH_UNIFORM_H_
