// Causal attention over a paged KV cache, one query row and a span of KV heads (each with its
// GQA group of query heads) per work item. Keys are visited in chunks with an online softmax: per
// chunk the scores of every query head in the group are computed against each key (the key row is
// read once for the whole group), the running max and sum are rescaled once, and the weighted
// values are accumulated. Everything is f32; the dot products and value updates over head_dim are
// those of the CPU's instruction set (isa_kernels.h).
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "kernels/checks.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/isa_kernels.h"

namespace loom::kernels {
namespace {

// Keys scored per online-softmax rescale: enough to amortise the rescale, few enough that the
// scores stay in L1.
constexpr int64_t kChunk = 64;

struct Geometry {
  int64_t block_size, kv_heads, head_dim, group;  // group = query heads per KV head
  int64_t q_row_stride, q_head_stride;
};

// One query row (at `position`, seeing keys [first, position]) of one sequence, for the query
// heads of KV heads
// [g0, g0 + heads): `group` query heads per KV head, laid out consecutively in q and out. A
// cache slot holds every KV head side by side, so covering several heads per pass reads each
// slot's rows as one contiguous run instead of one strided row per head.
// `scratch` holds heads * group * (kChunk + head_dim) floats.
void AttendRow(const float* q, const float* k_cache, const float* v_cache,
               const int32_t* block_table, int64_t first, int64_t position, int64_t g0,
               int64_t heads, const Geometry& geo, float scale, const internal::IsaKernels& isa,
               float* out, float* scratch) {
  const int64_t d = geo.head_dim, per_kv = geo.group, group = heads * per_kv;
  float* scores = scratch;                // [group][kChunk]
  float* acc = scratch + group * kChunk;  // [group][d]
  std::vector<float> running_max(group), running_sum(group);
  std::fill(acc, acc + group * d, 0.0f);
  std::fill(running_max.begin(), running_max.end(), -std::numeric_limits<float>::infinity());
  const int64_t slot_stride = geo.kv_heads * d;
  const int64_t length = position + 1;
  // Offsets of this chunk's key/value rows (the same for both caches), walked block by block
  // so no division is needed per key.
  int64_t offsets[kChunk];
  int64_t block_index = first / geo.block_size, in_block = first % geo.block_size;
  for (int64_t c0 = first; c0 < length; c0 += kChunk) {
    const int64_t n = std::min(kChunk, length - c0);
    for (int64_t j = 0; j < n; ++j) {
      const int64_t slot =
          static_cast<int64_t>(block_table[block_index]) * geo.block_size + in_block;
      offsets[j] = slot * slot_stride + g0 * d;
      if (++in_block == geo.block_size) {
        in_block = 0;
        ++block_index;
      }
    }
    const internal::AttentionChunk chunk{.q = q,
                                         .q_head_stride = geo.q_head_stride,
                                         .k_cache = k_cache,
                                         .v_cache = v_cache,
                                         .offsets = offsets,
                                         .keys = n,
                                         .group = group,
                                         .per_kv = per_kv,
                                         .head_dim = d,
                                         .scale = scale,
                                         .scores = scores,
                                         .score_stride = kChunk,
                                         .acc = acc};
    isa.attention_scores(chunk);
    for (int64_t h = 0; h < group; ++h) {
      float* s = scores + h * kChunk;
      float chunk_max = s[0];
      for (int64_t j = 1; j < n; ++j) chunk_max = std::max(chunk_max, s[j]);
      const float new_max = std::max(running_max[h], chunk_max);
      // exp(-inf) = 0 on the first chunk, so the (empty) accumulator is simply replaced.
      const float alpha = std::exp(running_max[h] - new_max);
      float sum = 0.0f;
      for (int64_t j = 0; j < n; ++j) {
        s[j] = std::exp(s[j] - new_max);
        sum += s[j];
      }
      running_sum[h] = running_sum[h] * alpha + sum;
      running_max[h] = new_max;
      float* a = acc + h * d;
      if (alpha != 1.0f) {
        for (int64_t i = 0; i < d; ++i) a[i] *= alpha;
      }
    }
    isa.attention_values(chunk);
  }
  for (int64_t h = 0; h < group; ++h) {
    const float inv = 1.0f / running_sum[h];
    for (int64_t i = 0; i < d; ++i) out[h * d + i] = acc[h * d + i] * inv;
  }
}

}  // namespace

absl::Status cpu::PagedAttention(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache,
                                 const AttentionBatch& batch, float scale, int64_t window,
                                 Tensor& out) {
  constexpr const char* kName = "PagedAttention";
  LOOM_RETURN_IF_ERROR(internal::CheckTensor(kName, "q", q, DType::kF32, 3, false));
  LOOM_RETURN_IF_ERROR(internal::CheckTensor(kName, "k_cache", k_cache, DType::kF32, 4, true));
  LOOM_RETURN_IF_ERROR(internal::CheckTensor(kName, "v_cache", v_cache, DType::kF32, 4, true));
  LOOM_RETURN_IF_ERROR(internal::CheckShape(kName, "v_cache", v_cache, k_cache.shape()));
  LOOM_RETURN_IF_ERROR(internal::CheckTensor(kName, "out", out, DType::kF32, 3, true));
  LOOM_RETURN_IF_ERROR(internal::CheckShape(kName, "out", out, q.shape()));
  const int64_t tokens = q.size(0), q_heads = q.size(1), head_dim = q.size(2);
  const int64_t num_blocks = k_cache.size(0), block_size = k_cache.size(1),
                kv_heads = k_cache.size(2);
  if (k_cache.size(3) != head_dim) {
    return absl::InvalidArgumentError(absl::StrCat("PagedAttention: q ", q.DebugString(),
                                                   " and cache ", k_cache.DebugString(),
                                                   " disagree on head_dim"));
  }
  if (head_dim > 1 && q.strides()[2] != 1) {
    return absl::InvalidArgumentError("PagedAttention: q needs a contiguous head dimension");
  }
  if (kv_heads <= 0 || block_size <= 0 || q_heads % kv_heads != 0 || q_heads / kv_heads > 64) {
    return absl::InvalidArgumentError(
        absl::StrCat("PagedAttention: ", q_heads, " query heads cannot share ", kv_heads,
                     " KV heads (need a whole group of at most 64 query heads per KV head)"));
  }
  if (!std::isfinite(scale)) {
    return absl::InvalidArgumentError("PagedAttention: scale must be finite");
  }
  if (window < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("PagedAttention: window must be >= 0 (0 = none), got ", window));
  }
  LOOM_RETURN_IF_ERROR(internal::CheckAttentionBatch(batch, tokens, num_blocks, block_size));
  if (tokens == 0 || head_dim == 0 || q_heads == 0) return absl::OkStatus();

  const Geometry geo{block_size,         kv_heads,       head_dim,
                     q_heads / kv_heads, q.strides()[0], q.strides()[1]};
  // Work items: (query row, KV head); each row knows its sequence through `row_seq`.
  std::vector<int32_t> row_seq(static_cast<size_t>(tokens));
  for (size_t s = 0; s + 1 < batch.query_start.size(); ++s) {
    for (int32_t r = batch.query_start[s]; r < batch.query_start[s + 1]; ++r)
      row_seq[r] = static_cast<int32_t>(s);
  }
  // Work items: (query row, span of KV heads). Whole rows read each cache slot contiguously;
  // rows are split into spans only when there are too few rows to keep every thread busy.
  const int64_t threads = omp_get_max_threads();
  int64_t spans = 1;
  while (spans < kv_heads && tokens * spans < 4 * threads && kv_heads % (spans * 2) == 0) {
    spans *= 2;
  }
  const int64_t span_heads = kv_heads / spans;
  const int64_t items = tokens * spans;
  const float* qp = q.data<float>();
  const float* kp = k_cache.data<float>();
  const float* vp = v_cache.data<float>();
  float* op = out.data<float>();
  const internal::IsaKernels& isa = internal::ActiveKernels();
#pragma omp parallel
  {
    std::vector<float> scratch(static_cast<size_t>(span_heads * geo.group * (kChunk + head_dim)));
    // Rows differ in length under the causal mask, so hand them out dynamically.
#pragma omp for schedule(dynamic, 1)
    for (int64_t item = 0; item < items; ++item) {
      const int64_t row = item / spans, g = (item % spans) * span_heads;
      const int32_t s = row_seq[row];
      const int64_t n = batch.query_start[s + 1] - batch.query_start[s];
      const int64_t position = batch.context_len[s] - n + (row - batch.query_start[s]);
      const float* q_row = qp + row * geo.q_row_stride + g * geo.group * geo.q_head_stride;
      float* out_row = op + (row * q_heads + g * geo.group) * head_dim;
      const int64_t first = window > 0 ? std::max<int64_t>(0, position - window + 1) : 0;
      AttendRow(q_row, kp, vp, batch.block_tables[s].data(), first, position, g, span_heads, geo,
                scale, isa, out_row, scratch.data());
    }
  }
  return absl::OkStatus();
}

}  // namespace loom::kernels
