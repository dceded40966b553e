// Host side of the CUDA paged attention: tensor checks, the plan, and the launch.
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "kernels/checks.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/host_util.h"
#include "kernels/cuda/launch.h"

namespace loom::kernels::cuda {
namespace {

using ::loom::kernels::internal::CheckShape;
using ::loom::kernels::internal::CheckTensor;

// The CPU kernel's tensor checks (caches may also be bf16/f16); the geometry they imply.
absl::StatusOr<AttentionGeometry> CheckTensors(const Tensor& q, const Tensor& k_cache,
                                               const Tensor& v_cache, float scale,
                                               int64_t window, const Tensor& out) {
  constexpr const char* kName = "PagedAttention";
  LOOM_RETURN_IF_ERROR(CheckTensor(kName, "q", q, DType::kF32, 3, false));
  LOOM_RETURN_IF_ERROR(internal::CheckStored(kName, "k_cache", k_cache));
  LOOM_RETURN_IF_ERROR(CheckTensor(kName, "k_cache", k_cache, k_cache.dtype(), 4, true));
  LOOM_RETURN_IF_ERROR(CheckTensor(kName, "v_cache", v_cache, k_cache.dtype(), 4, true));
  LOOM_RETURN_IF_ERROR(CheckShape(kName, "v_cache", v_cache, k_cache.shape()));
  LOOM_RETURN_IF_ERROR(CheckTensor(kName, "out", out, DType::kF32, 3, true));
  LOOM_RETURN_IF_ERROR(CheckShape(kName, "out", out, q.shape()));
  AttentionGeometry g;
  g.tokens = q.size(0);
  g.q_heads = q.size(1);
  g.head_dim = q.size(2);
  g.num_blocks = k_cache.size(0);
  g.block_size = k_cache.size(1);
  g.kv_heads = k_cache.size(2);
  g.cache_dtype = k_cache.dtype();
  if (k_cache.size(3) != g.head_dim) {
    return absl::InvalidArgumentError(absl::StrCat("PagedAttention: q ", q.DebugString(),
                                                   " and cache ", k_cache.DebugString(),
                                                   " disagree on head_dim"));
  }
  if (g.head_dim > 1 && q.strides()[2] != 1) {
    return absl::InvalidArgumentError("PagedAttention: q needs a contiguous head dimension");
  }
  if (!std::isfinite(scale)) {
    return absl::InvalidArgumentError("PagedAttention: scale must be finite");
  }
  if (window < 0 || window > INT32_MAX) {
    return absl::InvalidArgumentError(
        absl::StrCat("PagedAttention: window must be in [0, 2^31) (0 = none), got ", window));
  }
  return g;
}

}  // namespace

absl::StatusOr<PagedAttentionPlan> PlanPagedAttention(DeviceContext& context,
                                                      const AttentionBatch& batch,
                                                      const AttentionGeometry& geometry,
                                                      int64_t fixed_max_keys,
                                                      DeviceBuffer* persistent) {
  int per_sm = 1;
  if (geometry.head_dim > 0 && geometry.head_dim <= internal::kAttentionMaxHeadDim) {
    LOOM_CUDA_CHECK(internal::PagedAttentionBlocksPerSm(internal::ToStorage(geometry.cache_dtype),
                                                        static_cast<int32_t>(geometry.head_dim),
                                                        &per_sm));
  }
  LOOM_ASSIGN_OR_RETURN(
      PagedAttentionPlan plan,
      PagedAttentionPlan::Make(batch, geometry,
                               int64_t{context.multiprocessors()} * std::max(per_sm, 1),
                               fixed_max_keys));
  LOOM_RETURN_IF_ERROR(plan.Upload(context, persistent));
  return plan;
}

absl::Status PagedAttention(DeviceContext& context, const Tensor& q, const Tensor& k_cache,
                            const Tensor& v_cache, const AttentionBatch& batch, float scale,
                            int64_t window, Tensor& out) {
  LOOM_ASSIGN_OR_RETURN(const AttentionGeometry geometry,
                        CheckTensors(q, k_cache, v_cache, scale, window, out));
  LOOM_ASSIGN_OR_RETURN(const PagedAttentionPlan plan,
                        PlanPagedAttention(context, batch, geometry));
  // The plan's device memory is released in stream order, after the kernels that read it.
  return PagedAttention(context, q, k_cache, v_cache, plan, scale, window, out);
}

absl::Status PagedAttention(DeviceContext& context, const Tensor& q, const Tensor& k_cache,
                            const Tensor& v_cache, const PagedAttentionPlan& plan, float scale,
                            int64_t window, Tensor& out) {
  LOOM_ASSIGN_OR_RETURN(const AttentionGeometry geometry,
                        CheckTensors(q, k_cache, v_cache, scale, window, out));
  if (!(geometry == plan.geometry())) {
    return absl::InvalidArgumentError(
        absl::StrCat("PagedAttention: q ", q.DebugString(), " and cache ", k_cache.DebugString(),
                     " are not the shapes and cache type the plan was made for"));
  }
  if (!plan.uploaded()) {
    return absl::FailedPreconditionError("PagedAttention: the plan was not uploaded");
  }
  if (geometry.tokens == 0 || geometry.head_dim == 0 || geometry.q_heads == 0) {
    return absl::OkStatus();
  }
  internal::PagedAttentionArgs args{};
  args.q = q.data<float>();
  args.q_row_stride = q.strides()[0];
  args.q_head_stride = q.strides()[1];
  args.k_cache = k_cache.raw_data();
  args.v_cache = v_cache.raw_data();
  args.cache_type = internal::ToStorage(k_cache.dtype());
  args.out = out.data<float>();
  args.q_heads = static_cast<int32_t>(geometry.q_heads);
  args.kv_heads = static_cast<int32_t>(geometry.kv_heads);
  args.head_dim = static_cast<int32_t>(geometry.head_dim);
  args.block_size = static_cast<int32_t>(geometry.block_size);
  args.scale = scale;
  args.window = static_cast<int32_t>(window);
  args.tiles = plan.device_tiles();
  args.block_tables = plan.device_block_tables();
  args.max_blocks = plan.max_blocks();
  args.num_tiles = plan.num_tiles();
  args.heads_per_block = plan.heads_per_block();
  args.head_chunks = plan.head_chunks();
  args.num_partitions = plan.num_partitions();
  args.partition_keys = plan.partition_keys();
  if (const size_t floats = plan.partial_floats(); floats > 0) {
    LOOM_ASSIGN_OR_RETURN(void* scratch, context.Scratch(floats * sizeof(float)));
    args.partial_out = static_cast<float*>(scratch);
    // (max, sum) pairs after the head_dim-long partials: kAttentionMaxQueries pairs per slot.
    args.partial_max_sum = args.partial_out + floats / (geometry.head_dim + 2) * geometry.head_dim;
  }
  LOOM_CUDA_CHECK(internal::LaunchPagedAttention(args, context.stream()));
  return absl::OkStatus();
}

}  // namespace loom::kernels::cuda
