#include "worker/memory_plan.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace loom {
namespace {

std::string Gb(int64_t bytes) { return absl::StrFormat("%.2f GB", bytes / 1e9); }

}  // namespace

absl::StatusOr<MemoryPlan> PlanKvCache(const MemoryFigures& f) {
  if (f.total_bytes <= 0 || f.free_bytes < 0 || f.free_bytes > f.total_bytes ||
      f.weight_bytes < 0 || f.peak_step_bytes < 0 || f.staging_bytes < 0 ||
      f.block_bytes <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "memory figures that cannot be: total ", f.total_bytes, ", free ", f.free_bytes,
        ", weights ", f.weight_bytes, ", step peak ", f.peak_step_bytes, ", staging ",
        f.staging_bytes, ", block ", f.block_bytes, " bytes"));
  }
  if (!(f.utilization > 0 && f.utilization <= 1) || !std::isfinite(f.utilization)) {
    return absl::InvalidArgumentError(
        absl::StrCat("gpu memory utilization must be in (0, 1], got ", f.utilization));
  }
  const int64_t allowed = static_cast<int64_t>(f.utilization * static_cast<double>(f.total_bytes));
  const int64_t used = f.total_bytes - f.free_bytes;
  const int64_t kv = allowed - used - f.peak_step_bytes - f.staging_bytes;
  const std::string figures = absl::StrCat(
      "weights ", Gb(f.weight_bytes), ", step peak ", Gb(f.peak_step_bytes), ", staging ",
      Gb(f.staging_bytes), ", in use ", Gb(used), " of ",
      absl::StrFormat("%.2f", f.utilization), " × ", Gb(f.total_bytes));
  if (kv < f.block_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "no room for the KV cache: ", figures, " leaves ", Gb(kv < 0 ? 0 : kv),
        ", less than one block (", f.block_bytes,
        " bytes); raise the utilization, keep no staging room, or lower "
        "max_num_batched_tokens"));
  }
  MemoryPlan plan;
  plan.num_blocks = kv / f.block_bytes;
  plan.kv_bytes = plan.num_blocks * f.block_bytes;
  plan.summary = absl::StrCat(figures, "; KV ", Gb(plan.kv_bytes), " (", plan.num_blocks,
                              " blocks)");
  return plan;
}

}  // namespace loom
