#include "common/device.h"

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace loom {

std::string Device::ToString() const {
  return kind == DeviceKind::kCpu ? "cpu" : absl::StrCat("cuda:", index);
}

std::string DeviceSpec::ToString() const {
  if (kind == DeviceKind::kCpu) return "cpu";
  return index < 0 ? "cuda" : absl::StrCat("cuda:", index);
}

absl::StatusOr<DeviceSpec> ParseDeviceSpec(const std::string& text) {
  DeviceSpec spec;
  if (text == "cpu") return spec;
  spec.kind = DeviceKind::kCuda;
  if (text == "cuda") return spec;
  int index = -1;
  const std::string digits = absl::StartsWith(text, "cuda:") ? text.substr(5) : "";
  if (!digits.empty() && digits.find_first_not_of("0123456789") == std::string::npos &&
      absl::SimpleAtoi(digits, &index)) {
    spec.index = index;
    return spec;
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown device \"", text,
                                                 "\" (expected cpu, cuda or cuda:K)"));
}

absl::StatusOr<int> DeviceIndexForRank(const DeviceSpec& spec, int rank, int world_size,
                                       int visible) {
  if (spec.kind == DeviceKind::kCpu) return -1;
  if (world_size < 1 || rank < 0 || rank >= world_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("rank ", rank, " outside a group of ", world_size));
  }
  // The rank is the caller's to name (the controller prefixes "rank R: ").
  const std::string who = absl::StrCat("device ", spec.ToString());
  if (visible <= 0) {
    return absl::FailedPreconditionError(
        absl::StrCat(who, ": no CUDA device is visible on this host"));
  }
  if (spec.index >= 0) {
    if (world_size > 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          who, ": one device index cannot serve ", world_size,
          " ranks; give each worker its own --device cuda:K, or --device cuda for one per rank"));
    }
    if (spec.index >= visible) {
      return absl::InvalidArgumentError(absl::StrCat(who, ": only ", visible,
                                                     " CUDA devices are visible (0..",
                                                     visible - 1, ")"));
    }
    return spec.index;
  }
  if (world_size > visible) {
    return absl::FailedPreconditionError(absl::StrCat(
        who, ": ", world_size, " ranks need ", world_size, " GPUs; ", visible,
        " are visible on this host"));
  }
  return rank;
}

}  // namespace loom
