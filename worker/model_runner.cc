#include "worker/model_runner.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "kernels/sampling.h"

namespace loom {
namespace {

// log_softmax of each row that asked, at the chosen token and the top k; in double, so the
// normaliser does not depend on the vocabulary's order.
std::vector<TokenLogprobs> Logprobs(const Tensor& logits, const std::vector<SamplingParams>& params,
                                    const std::vector<int32_t>& tokens) {
  const int64_t vocab = logits.size(1);
  std::vector<TokenLogprobs> out(params.size());
  std::vector<int32_t> order;
  for (size_t r = 0; r < params.size(); ++r) {
    if (params[r].logprobs < 0) continue;
    const float* row = logits.data<float>() + static_cast<int64_t>(r) * vocab;
    const float peak = *std::max_element(row, row + vocab);
    double sum = 0;
    for (int64_t i = 0; i < vocab; ++i) sum += std::exp(static_cast<double>(row[i]) - peak);
    const double log_norm = peak + std::log(sum);
    TokenLogprobs& t = out[r];
    t.present = true;
    t.logprob = static_cast<float>(row[tokens[r]] - log_norm);
    const int64_t k = std::min<int64_t>(params[r].logprobs, vocab);
    if (k == 0) continue;
    order.resize(static_cast<size_t>(vocab));
    std::iota(order.begin(), order.end(), 0);
    // Descending; the lower id first among equals, as greedy sampling picks.
    std::partial_sort(order.begin(), order.begin() + k, order.end(), [row](int32_t a, int32_t b) {
      return row[a] > row[b] || (row[a] == row[b] && a < b);
    });
    for (int64_t i = 0; i < k; ++i) {
      t.top_ids.push_back(order[i]);
      t.top_logprobs.push_back(static_cast<float>(row[order[i]] - log_norm));
    }
  }
  return out;
}

}  // namespace

absl::StatusOr<std::unique_ptr<ModelRunner>> ModelRunner::Create(
    const ModelConfig& config, const ModelRunnerOptions& options) {
  auto runner = std::make_unique<ModelRunner>();
  LOOM_ASSIGN_OR_RETURN(runner->decoder_, Decoder::Create(config, options.decoder));
  const KvCacheShape shape = runner->decoder_->CacheShape(options.block_size);
  const int64_t bytes = options.kv_cache_blocks > 0
                            ? options.kv_cache_blocks * shape.BytesPerBlock()
                            : options.kv_cache_bytes;
  LOOM_ASSIGN_OR_RETURN(runner->cache_, KvCache::Create(shape, bytes, runner->decoder_->context()));
  const bool single_rank =
      options.decoder.comm == nullptr || options.decoder.comm->world_size() == 1;
  if (options.decode_graphs && runner->decoder_->context().SupportsGraphs() && single_rank) {
    DecodeGraphOptions graphs;
    graphs.max_batch = std::max<int64_t>(1, options.graph_max_batch);
    graphs.max_context =
        options.graph_max_context > 0 ? options.graph_max_context : config.MaxContextLength();
    graphs.single_rank = single_rank;
    runner->graphs_ = std::make_unique<DecodeGraphs>(graphs);
  }
  return runner;
}

int64_t ModelRunner::FreeKvCache() {
  const int64_t bytes = cache_.nbytes();
  if (bytes > 0) shape_ = cache_.shape();
  cache_ = KvCache();
  return bytes;
}

absl::Status ModelRunner::RestoreKvCache(int64_t bytes) {
  LOOM_ASSIGN_OR_RETURN(cache_, KvCache::Create(shape_, bytes, decoder_->context()));
  return absl::OkStatus();
}

absl::Status ModelRunner::ResizeKvCache(int64_t bytes) {
  const KvCacheShape shape = cache_.shape();
  // The old cache goes first, so the device holds one at a time; it is rebuilt on failure.
  const int64_t old_bytes = cache_.nbytes();
  cache_ = KvCache();
  absl::StatusOr<KvCache> cache = KvCache::Create(shape, bytes, decoder_->context());
  if (!cache.ok()) {
    absl::StatusOr<KvCache> old = KvCache::Create(shape, old_bytes, decoder_->context());
    if (old.ok()) cache_ = std::move(*old);
    return cache.status();
  }
  cache_ = std::move(*cache);
  return absl::OkStatus();
}

absl::StatusOr<StepOutput> ModelRunner::Execute(const StepInput& step) {
  if (step.sequences.empty()) return absl::InvalidArgumentError("step has no sequences");
  const int64_t bs = cache_.shape().block_size;
  std::vector<SamplingParams> params;
  std::vector<uint64_t> sample_index;
  StepOutput out;
  for (const SequenceStep& s : step.sequences) {
    const int64_t n = static_cast<int64_t>(s.token_ids.size());
    const int64_t context = s.start_position + n;
    if (n == 0 || s.start_position < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("sequence ", s.seq_id, ": a step needs at least one token"));
    }
    if (static_cast<int64_t>(s.block_table.size()) * bs < context) {
      return absl::InvalidArgumentError(absl::StrCat("sequence ", s.seq_id, ": block table of ",
                                                     s.block_table.size(), " blocks cannot hold ",
                                                     context, " tokens"));
    }
    for (int32_t b : s.block_table) {
      if (b < 0 || b >= cache_.num_blocks()) {
        return absl::InvalidArgumentError(absl::StrCat("sequence ", s.seq_id, ": block id ", b,
                                                       " outside [0, ", cache_.num_blocks(), ")"));
      }
    }
    if (s.sample) {
      LOOM_RETURN_IF_ERROR(ValidateSamplingParams(s.sampling));
      params.push_back(s.sampling);
      sample_index.push_back(s.sample_index);
      out.seq_ids.push_back(s.seq_id);
    }
  }
  LOOM_ASSIGN_OR_RETURN(Tensor logits, graphs_ != nullptr && graphs_->Eligible(step)
                                           ? graphs_->Run(*decoder_, cache_, step)
                                           : decoder_->Forward(step, cache_));
  if (params.empty()) return out;
  kernels::ExecutionContext& ctx = decoder_->context();
  bool any_logprobs = false, any_penalties = false;
  for (const SamplingParams& p : params) {
    any_logprobs |= p.logprobs >= 0;
    any_penalties |= p.has_penalties();
  }
  // Only what a request or a test asks for crosses to the host: tokens always, logits when
  // logprobs or the logits themselves are wanted — the model's own, before any penalty.
  Tensor host_logits;
  if (any_logprobs || step.return_logits) {
    LOOM_ASSIGN_OR_RETURN(host_logits, kernels::OnHost(ctx, logits));
    // They live in the decoder's workspace, which penalties and the next step overwrite.
    if (host_logits.raw_data() == logits.raw_data()) host_logits = host_logits.Clone();
  }
  if (any_penalties) {
    std::vector<kernels::PenaltyRow> rows;
    for (const SequenceStep& s : step.sequences) {
      if (!s.sample) continue;
      kernels::PenaltyRow& row = rows.emplace_back();
      if (!s.sampling.has_penalties()) continue;
      row.ids = s.penalty_ids;
      row.output_counts = s.penalty_output_counts;
      row.presence = s.sampling.presence_penalty;
      row.frequency = s.sampling.frequency_penalty;
      row.repetition = s.sampling.repetition_penalty;
    }
    LOOM_RETURN_IF_ERROR(kernels::ApplyPenalties(ctx, logits, rows));
  }
  LOOM_ASSIGN_OR_RETURN(out.tokens, kernels::Sample(ctx, logits, params, sample_index));
  if (any_logprobs) out.logprobs = Logprobs(host_logits, params, out.tokens);
  if (step.return_logits) out.logits = host_logits;
  return out;
}

}  // namespace loom
