// Where a rank runs: the `--device` spelling ("cpu", "cuda", "cuda:K") and which physical GPU a
// rank of a tensor-parallel group binds. Pure logic (no device library), so the rules are the
// same, and tested the same, on machines with and without GPUs.
#ifndef LOOM_COMMON_DEVICE_H_
#define LOOM_COMMON_DEVICE_H_

#include <string>

#include "absl/status/statusor.h"

namespace loom {

enum class DeviceKind { kCpu, kCuda };

// Where a tensor's memory lives: the host, or one GPU (an index among the visible ones).
struct Device {
  DeviceKind kind = DeviceKind::kCpu;
  int index = 0;

  static Device Cpu() { return Device{}; }
  static Device Cuda(int index) { return Device{DeviceKind::kCuda, index}; }
  bool is_cpu() const { return kind == DeviceKind::kCpu; }
  bool operator==(const Device& other) const {
    return kind == other.kind && (kind == DeviceKind::kCpu || index == other.index);
  }
  bool operator!=(const Device& other) const { return !(*this == other); }
  // "cpu" or "cuda:K".
  std::string ToString() const;
};

struct DeviceSpec {
  DeviceKind kind = DeviceKind::kCpu;
  int index = -1;  // "cuda:K": K; "cuda" and "cpu": -1 (chosen per rank)

  // "cpu", "cuda" or "cuda:K".
  std::string ToString() const;
};

// Parses "cpu", "cuda" or "cuda:K" (K a non-negative integer); anything else is InvalidArgument
// naming the text and the accepted spellings.
absl::StatusOr<DeviceSpec> ParseDeviceSpec(const std::string& text);

// The device index (within what CUDA_VISIBLE_DEVICES leaves visible) that `rank` of a
// `world_size` group binds on a host that sees `visible` GPUs: "cuda" gives rank r device r;
// "cuda:K" names device K for a single-rank worker. Errors (FailedPrecondition or
// InvalidArgument) name the device and how many are visible: no GPU, more ranks than
// GPUs, an index out of range, one index for several ranks. Devices of kind cpu give -1.
// Messages name the device, not the rank: whoever reports them says which rank it was.
absl::StatusOr<int> DeviceIndexForRank(const DeviceSpec& spec, int rank, int world_size,
                                       int visible);

}  // namespace loom

#endif  // LOOM_COMMON_DEVICE_H_
