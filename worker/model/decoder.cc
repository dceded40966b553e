#include "worker/model/decoder.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "kernels/rope.h"

namespace loom {

absl::StatusOr<std::unique_ptr<Decoder>> Decoder::Create(const ModelConfig& config,
                                                         const DecoderOptions& options) {
  LOOM_RETURN_IF_ERROR(config.Validate());
  if (!IsFloat(options.weight_dtype)) {
    return absl::InvalidArgumentError("weight dtype must be float32, bfloat16 or float16");
  }
  std::unique_ptr<Decoder> d(new Decoder());
  d->config_ = config;
  d->options_ = options;
  d->comm_ = options.comm ? options.comm : &d->single_rank_;
  d->ctx_ = options.context ? options.context : &kernels::HostContext();
  LOOM_RETURN_IF_ERROR(d->Build());
  return d;
}

absl::Status Decoder::Build() {
  const ModelConfig& c = config_;
  const int64_t tp = comm_->world_size(), rank = comm_->rank();
  // Query heads split evenly. KV heads split evenly too, or, when there are fewer KV heads than
  // ranks, each is replicated on tp / num_key_value_heads consecutive ranks (as vLLM does):
  // rank r holds KV head r * num_key_value_heads / tp, the one its query heads attend with.
  const int64_t kv_shards = std::min(c.num_key_value_heads, tp);
  if (c.num_attention_heads % tp != 0 ||
      (c.num_key_value_heads >= tp ? c.num_key_value_heads % tp != 0
                                   : tp % c.num_key_value_heads != 0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tensor-parallel size ", tp, " does not fit the model's ", c.num_attention_heads,
        " attention heads and ", c.num_key_value_heads,
        " KV heads: the attention heads must divide evenly over the ranks, and the KV heads "
        "too, or the ranks evenly over the KV heads"));
  }
  if (c.intermediate_size % tp != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tensor-parallel size ", tp, " does not divide intermediate_size ", c.intermediate_size));
  }
  if (c.vocab_size < tp) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor-parallel size ", tp, " exceeds vocab_size ", c.vocab_size));
  }
  local_q_heads_ = c.num_attention_heads / tp;
  local_kv_heads_ = c.num_key_value_heads / kv_shards;
  const int64_t H = c.hidden_size, D = c.head_dim, I = c.intermediate_size;
  const DType wd = options_.weight_dtype;
  kernels::ExecutionContext& ctx = *ctx_;

  // Every parameter is registered with its region and a view of its part in our buffers; the
  // views share storage, so LoadWeight writes straight into the model.
  auto add = [this](ParameterInfo info, Tensor part) {
    index_[info.name] = parameters_.size();
    parameters_.push_back(std::move(info));
    parts_.push_back(std::move(part));
  };
  auto add_linear = [&](ParallelLinear& layer) -> absl::Status {
    for (const std::string& n : layer.ParameterNames()) {
      LOOM_ASSIGN_OR_RETURN(Tensor part, layer.Part(n));
      add(layer.Info(n), std::move(part));
    }
    return absl::OkStatus();
  };
  auto add_norm = [&](const std::string& name, Tensor& dst) {
    ParameterInfo info;
    info.name = name;
    info.shape = dst.shape();
    add(std::move(info), dst);
  };

  // Vocab-parallel: each rank holds ceil(V / tp) rows; the last shard is zero-padded when tp does
  // not divide V (ids never reach the padding, and Forward drops the padded logits).
  const int64_t vocab_rows = (c.vocab_size + tp - 1) / tp;
  LOOM_ASSIGN_OR_RETURN(embed_, ctx.Allocate(wd, {vocab_rows, H}));
  {
    ParameterInfo info;
    info.name = "model.embed_tokens.weight";
    info.shape = {c.vocab_size, H};
    info.split_dim = 0;
    info.start = std::min(rank * vocab_rows, c.vocab_size);
    info.length = std::min(vocab_rows, c.vocab_size - info.start);
    LOOM_ASSIGN_OR_RETURN(Tensor part, embed_.Slice(0, 0, info.length));
    add(std::move(info), std::move(part));
  }

  layers_.resize(c.num_hidden_layers);
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    Layer& L = layers_[i];
    const std::string p = absl::StrCat("model.layers.", i, ".");
    LOOM_ASSIGN_OR_RETURN(L.input_norm, ctx.Allocate(DType::kF32, {H}));
    LOOM_ASSIGN_OR_RETURN(L.post_attention_norm, ctx.Allocate(DType::kF32, {H}));
    LOOM_ASSIGN_OR_RETURN(
        L.qkv,
        ParallelLinear::Create({{p + "self_attn.q_proj", c.num_attention_heads * D},
                                {p + "self_attn.k_proj", c.num_key_value_heads * D, kv_shards},
                                {p + "self_attn.v_proj", c.num_key_value_heads * D, kv_shards}},
                               H, c.qkv_bias, ShardKind::kColumn, rank, tp, wd, ctx));
    LOOM_ASSIGN_OR_RETURN(
        L.o, ParallelLinear::Create({{p + "self_attn.o_proj", H}}, c.num_attention_heads * D,
                                    c.o_bias, ShardKind::kRow, rank, tp, wd, ctx));
    LOOM_ASSIGN_OR_RETURN(
        L.gate_up, ParallelLinear::Create({{p + "mlp.gate_proj", I}, {p + "mlp.up_proj", I}}, H,
                                          c.mlp_bias, ShardKind::kColumn, rank, tp, wd, ctx));
    LOOM_ASSIGN_OR_RETURN(L.down, ParallelLinear::Create({{p + "mlp.down_proj", H}}, I, c.mlp_bias,
                                                         ShardKind::kRow, rank, tp, wd, ctx));
    add_norm(p + "input_layernorm.weight", L.input_norm);
    LOOM_RETURN_IF_ERROR(add_linear(L.qkv));
    if (c.qk_norm) {
      LOOM_ASSIGN_OR_RETURN(L.q_norm, ctx.Allocate(DType::kF32, {D}));
      LOOM_ASSIGN_OR_RETURN(L.k_norm, ctx.Allocate(DType::kF32, {D}));
      add_norm(p + "self_attn.q_norm.weight", L.q_norm);
      add_norm(p + "self_attn.k_norm.weight", L.k_norm);
    }
    LOOM_RETURN_IF_ERROR(add_linear(L.o));
    add_norm(p + "post_attention_layernorm.weight", L.post_attention_norm);
    LOOM_RETURN_IF_ERROR(add_linear(L.gate_up));
    LOOM_RETURN_IF_ERROR(add_linear(L.down));
  }
  LOOM_ASSIGN_OR_RETURN(final_norm_, ctx.Allocate(DType::kF32, {H}));
  add_norm("model.norm.weight", final_norm_);
  LOOM_ASSIGN_OR_RETURN(lm_head_, ParallelLinear::Create({{"lm_head", c.vocab_size}}, H, false,
                                                         ShardKind::kVocab, rank, tp, wd, ctx));
  if (c.tie_word_embeddings) {
    LOOM_RETURN_IF_ERROR(lm_head_.TieWeight(embed_));
  } else {
    LOOM_RETURN_IF_ERROR(add_linear(lm_head_));
  }
  LOOM_RETURN_IF_ERROR(Reserve(options_.max_tokens, options_.max_sampled));
  max_positions_ = c.MaxContextLength();
  if (c.rope_scaling.type != "dynamic") {
    LOOM_ASSIGN_OR_RETURN(Tensor table,
                          kernels::MakeRopeCosSin(D, c.rope_theta, c.rope_scaling, max_positions_));
    LOOM_ASSIGN_OR_RETURN(rope_cos_sin_, ctx.Allocate(DType::kF32, table.shape()));
    LOOM_RETURN_IF_ERROR(ctx.Upload(table, rope_cos_sin_));
  }
  return absl::OkStatus();
}

absl::Status Decoder::LoadWeight(const std::string& name, const Tensor& t) {
  auto it = index_.find(name);
  if (it == index_.end()) {
    return absl::NotFoundError(
        absl::StrCat("unexpected parameter ", name, " for ", config_.architecture));
  }
  const ParameterInfo& info = parameters_[it->second];
  if (!IsFloat(t.dtype())) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": expected a float tensor, got ", DTypeName(t.dtype())));
  }
  Tensor part = t;
  if (t.shape() == info.shape && !info.is_whole()) {
    LOOM_ASSIGN_OR_RETURN(part, t.Slice(info.split_dim, info.start, info.length));
  } else if (t.shape() != info.local_shape()) {
    return absl::InvalidArgumentError(absl::StrCat(
        name, ": expected shape ", ShapeString(info.shape), ", got ", ShapeString(t.shape())));
  }
  return WritePart(name, [&part](Tensor& host) { return host.CopyFrom(part); });
}

absl::Status Decoder::WritePart(const std::string& name,
                                const std::function<absl::Status(Tensor& host)>& fill,
                                StagedUpload* staging) {
  auto it = index_.find(name);
  if (it == index_.end()) {
    return absl::NotFoundError(absl::StrCat("no parameter ", name, " in ", config_.architecture));
  }
  Tensor& dst = parts_[it->second];
  if (dst.device().is_cpu()) return fill(dst);
  if (staging != nullptr) return staging->Write(dst, fill);
  Tensor host = Tensor::Empty(dst.dtype(), dst.shape());
  LOOM_RETURN_IF_ERROR(fill(host));
  return ctx_->Upload(host, dst);
}

absl::StatusOr<Tensor> Decoder::HostPart(const std::string& name) const {
  LOOM_ASSIGN_OR_RETURN(Tensor part, Part(name));
  return kernels::OnHost(*ctx_, part);
}

absl::StatusOr<Tensor> Decoder::Part(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) {
    return absl::NotFoundError(absl::StrCat("no parameter ", name, " in ", config_.architecture));
  }
  return parts_[it->second];
}

uint64_t Decoder::BufferAddressDigest() const {
  uint64_t h = 1469598103934665603ull;  // FNV-1a over the part addresses
  for (const Tensor& t : parts_) {
    uint64_t a = reinterpret_cast<uintptr_t>(t.raw_data());
    for (int i = 0; i < 8; ++i, a >>= 8) h = (h ^ (a & 0xff)) * 1099511628211ull;
  }
  return h;
}

absl::Status Decoder::CopyWeightsFrom(const Decoder& other) {
  if (other.parameters_.size() != parameters_.size()) {
    return absl::InvalidArgumentError("cannot copy weights between different models");
  }
  for (size_t i = 0; i < parts_.size(); ++i) {
    if (other.parameters_[i].name != parameters_[i].name ||
        other.parts_[i].shape() != parts_[i].shape() ||
        other.parts_[i].dtype() != parts_[i].dtype()) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot copy ", other.parameters_[i].name, " into ", parameters_[i].name));
    }
  }
  for (size_t i = 0; i < parts_.size(); ++i) {
    LOOM_RETURN_IF_ERROR(kernels::Copy(*ctx_, other.parts_[i], parts_[i]));
  }
  return absl::OkStatus();
}

absl::Status Decoder::SwapWeights(Decoder& other) {
  if (other.parameters_.size() != parameters_.size() || other.weight_dtype() != weight_dtype() ||
      other.ctx_->device() != ctx_->device() || other.comm_->rank() != comm_->rank() ||
      other.comm_->world_size() != comm_->world_size()) {
    return absl::InvalidArgumentError("cannot swap weights between different models");
  }
  // Either side may hold no weights (DropWeights); a set that has them has them all.
  for (size_t i = 0; i < parts_.size(); ++i) {
    const std::vector<int64_t> want = parameters_[i].local_shape();
    if (other.parameters_[i].name != parameters_[i].name ||
        (other.has_weights() && other.parts_[i].shape() != want) ||
        (has_weights() && parts_[i].shape() != want)) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot swap ", other.parameters_[i].name, " with ", parameters_[i].name));
    }
  }
  // Each set moves whole, ties included (a tied LM head shares its own set's embedding).
  std::swap(embed_, other.embed_);
  std::swap(layers_, other.layers_);
  std::swap(final_norm_, other.final_norm_);
  std::swap(lm_head_, other.lm_head_);
  std::swap(parts_, other.parts_);
  return absl::OkStatus();
}

void Decoder::DropWeights() {
  embed_ = Tensor();
  layers_ = std::vector<Layer>(layers_.size());
  final_norm_ = Tensor();
  lm_head_ = ParallelLinear();
  parts_.assign(parts_.size(), Tensor());
}

KvCacheShape Decoder::CacheShape(int64_t block_size) const {
  KvCacheShape s;
  s.num_layers = config_.num_hidden_layers;
  s.block_size = block_size;
  s.num_kv_heads = local_kv_heads_;
  s.head_dim = config_.head_dim;
  return s;
}

absl::Status Decoder::Reserve(int64_t tokens, int64_t sampled) {
  if (tokens <= ws_.tokens && sampled <= ws_.sampled) return absl::OkStatus();
  ++workspace_generation_;  // the activations move: graphs captured on them are stale
  const ModelConfig& c = config_;
  const int64_t T = std::max(tokens, ws_.tokens), R = std::max(sampled, ws_.sampled);
  const int64_t H = c.hidden_size, D = c.head_dim, Hq = local_q_heads_, Hk = local_kv_heads_;
  const int64_t I = c.intermediate_size / comm_->world_size();
  kernels::ExecutionContext& ctx = *ctx_;
  Workspace w;
  w.tokens = T;
  w.sampled = R;
  if (T > 0) {
    LOOM_ASSIGN_OR_RETURN(w.hidden, ctx.Allocate(DType::kF32, {T, H}));
    LOOM_ASSIGN_OR_RETURN(w.residual, ctx.Allocate(DType::kF32, {T, H}));
    LOOM_ASSIGN_OR_RETURN(w.qkv, ctx.Allocate(DType::kF32, {T, (Hq + 2 * Hk) * D}));
    LOOM_ASSIGN_OR_RETURN(w.q, ctx.Allocate(DType::kF32, {T, Hq, D}));
    LOOM_ASSIGN_OR_RETURN(w.k, ctx.Allocate(DType::kF32, {T, Hk, D}));
    LOOM_ASSIGN_OR_RETURN(w.v, ctx.Allocate(DType::kF32, {T, Hk, D}));
    LOOM_ASSIGN_OR_RETURN(w.attn, ctx.Allocate(DType::kF32, {T, Hq, D}));
    LOOM_ASSIGN_OR_RETURN(w.gate_up, ctx.Allocate(DType::kF32, {T, 2 * I}));
    LOOM_ASSIGN_OR_RETURN(w.act, ctx.Allocate(DType::kF32, {T, I}));
    LOOM_ASSIGN_OR_RETURN(w.ids, ctx.Allocate(DType::kI32, {T}));
    LOOM_ASSIGN_OR_RETURN(w.positions, ctx.Allocate(DType::kI32, {T}));
    LOOM_ASSIGN_OR_RETURN(w.slots, ctx.Allocate(DType::kI64, {T}));
    if (c.rope_scaling.type == "dynamic") {
      LOOM_ASSIGN_OR_RETURN(w.rope, ctx.Allocate(DType::kF32, {T, D}));
      w.rope_host = Tensor::Empty(DType::kF32, {T, D});
    }
  }
  if (R > 0) {
    const int64_t local_vocab = lm_head_.local_out_features();
    LOOM_ASSIGN_OR_RETURN(w.selected, ctx.Allocate(DType::kF32, {R, H}));
    LOOM_ASSIGN_OR_RETURN(w.rows, ctx.Allocate(DType::kI32, {R}));
    LOOM_ASSIGN_OR_RETURN(w.local_logits, ctx.Allocate(DType::kF32, {R, local_vocab}));
    const int64_t padded_vocab = comm_->world_size() * local_vocab;
    if (comm_->world_size() > 1) {
      LOOM_ASSIGN_OR_RETURN(w.gathered, ctx.Allocate(DType::kF32, {R, padded_vocab}));
    }
    if (padded_vocab != c.vocab_size) {
      LOOM_ASSIGN_OR_RETURN(w.logits, ctx.Allocate(DType::kF32, {R, c.vocab_size}));
    }
  }
  ws_ = std::move(w);
  return absl::OkStatus();
}

template <typename T>
absl::StatusOr<Tensor> Decoder::Stage(const std::vector<T>& values, const Tensor& dst) {
  const int64_t n = static_cast<int64_t>(values.size());
  LOOM_ASSIGN_OR_RETURN(Tensor front, dst.Slice(0, 0, n));
  Tensor host = Tensor::Borrow(const_cast<T*>(values.data()), dst.dtype(), {n});
  LOOM_RETURN_IF_ERROR(ctx_->Upload(host, front));
  return front;
}

int64_t Decoder::WorkspaceBytes() const {
  int64_t bytes = 0;
  for (const Tensor* t :
       {&ws_.hidden, &ws_.residual, &ws_.qkv, &ws_.q, &ws_.k, &ws_.v, &ws_.attn, &ws_.gate_up,
        &ws_.act, &ws_.rope, &ws_.ids, &ws_.positions, &ws_.slots, &ws_.selected, &ws_.rows,
        &ws_.local_logits, &ws_.gathered, &ws_.logits}) {
    bytes += static_cast<int64_t>(t->nbytes());
  }
  return bytes;
}

int64_t Decoder::WeightBytes() const {
  // Every parameter's part once (a tied LM head is the embedding's).
  int64_t bytes = 0;
  for (const Tensor& t : parts_) bytes += t.defined() ? static_cast<int64_t>(t.nbytes()) : 0;
  return bytes;
}

Decoder::Flat Decoder::Flatten(const StepInput& step, int64_t bs) {
  Flat batch;
  batch.attention.query_start.push_back(0);
  for (const SequenceStep& s : step.sequences) {
    const int64_t n = static_cast<int64_t>(s.token_ids.size());
    for (int64_t i = 0; i < n; ++i) {
      const int64_t pos = s.start_position + i;
      batch.token_ids.push_back(s.token_ids[i]);
      batch.positions.push_back(static_cast<int32_t>(pos));
      // A graph's padding sequence computes but writes no K/V (a negative slot is skipped).
      batch.slots.push_back(s.padding ? -1 : int64_t{s.block_table[pos / bs]} * bs + pos % bs);
    }
    batch.attention.query_start.push_back(static_cast<int32_t>(batch.token_ids.size()));
    batch.attention.context_len.push_back(static_cast<int32_t>(s.start_position + n));
    batch.attention.block_tables.push_back(s.block_table);
    if (s.sample && n > 0) {
      batch.logits_rows.push_back(static_cast<int32_t>(batch.token_ids.size() - 1));
    }
  }
  return batch;
}

absl::StatusOr<Tensor> Decoder::Forward(const StepInput& step, KvCache& cache) {
  LOOM_RETURN_IF_ERROR(Prepare(step, cache, 0));
  return Run(cache);
}

absl::Status Decoder::Prepare(const StepInput& step, KvCache& cache, int64_t fixed_max_keys) {
  if (!has_weights()) return absl::FailedPreconditionError("the decoder holds no weights (asleep)");
  prepared_ = Prepared();
  const int64_t bs = cache.shape().block_size;
  for (const SequenceStep& s : step.sequences) {
    const int64_t end = int64_t{s.start_position} + static_cast<int64_t>(s.token_ids.size());
    if (s.start_position < 0 || static_cast<int64_t>(s.block_table.size()) * bs < end) {
      return absl::InvalidArgumentError(absl::StrCat(
          "sequence ", s.seq_id, ": positions [", s.start_position, ", ", end,
          ") are not covered by its block table of ", s.block_table.size(), " blocks"));
    }
  }
  flat_ = Flatten(step, bs);
  const Flat& batch = flat_;
  const int64_t T = static_cast<int64_t>(batch.token_ids.size());
  if (T == 0 || batch.positions.size() != batch.token_ids.size() ||
      batch.slots.size() != batch.token_ids.size()) {
    return absl::InvalidArgumentError("forward batch: token, position and slot counts differ");
  }
  for (int32_t p : batch.positions) {
    if (p < 0 || p >= max_positions_) {
      return absl::InvalidArgumentError(
          absl::StrCat("position ", p, " outside [0, ", max_positions_, ")"));
    }
  }
  for (int32_t id : batch.token_ids) {
    if (id < 0 || id >= config_.vocab_size) {
      return absl::InvalidArgumentError(
          absl::StrCat("token id ", id, " outside [0, ", config_.vocab_size, ")"));
    }
  }
  for (int32_t r : batch.logits_rows) {
    if (r < 0 || r >= T) return absl::InvalidArgumentError("logits row out of range");
  }
  const int64_t R = static_cast<int64_t>(batch.logits_rows.size());
  LOOM_RETURN_IF_ERROR(Reserve(T, R));
  kernels::ExecutionContext& ctx = *ctx_;
  auto rows = [](const Tensor& t, int64_t n) { return *t.Slice(0, 0, n); };
  Prepared p;
  p.tokens = T;
  p.sampled = R;
  LOOM_ASSIGN_OR_RETURN(p.ids, Stage(batch.token_ids, ws_.ids));
  LOOM_ASSIGN_OR_RETURN(p.slots, Stage(batch.slots, ws_.slots));
  // Dynamic rope rotates each token with its sequence's frequencies for this step (rope.h):
  // a table of one row per token, indexed by row.
  p.rope_cos_sin = rope_cos_sin_;
  if (p.rope_cos_sin.defined()) {
    LOOM_ASSIGN_OR_RETURN(p.positions, Stage(batch.positions, ws_.positions));
  } else {
    std::vector<int32_t> rope_rows;
    Tensor host_table = rows(ws_.rope_host, T);
    LOOM_RETURN_IF_ERROR(DynamicRopeRows(batch, host_table, rope_rows));
    p.rope_cos_sin = rows(ws_.rope, T);
    LOOM_RETURN_IF_ERROR(ctx.Upload(host_table, p.rope_cos_sin));
    LOOM_ASSIGN_OR_RETURN(p.positions, Stage(rope_rows, ws_.positions));
  }
  if (R > 0) {
    LOOM_ASSIGN_OR_RETURN(p.logits_rows, Stage(batch.logits_rows, ws_.rows));
  }
  LOOM_ASSIGN_OR_RETURN(p.attention, kernels::PlanAttention(ctx, batch.attention, rows(ws_.q, T),
                                                            cache.k(0), fixed_max_keys));
  prepared_ = std::move(p);
  return absl::OkStatus();
}

absl::StatusOr<Tensor> Decoder::Run(KvCache& cache) {
  const Prepared& p = prepared_;
  if (p.tokens == 0 || p.attention == nullptr) {
    return absl::FailedPreconditionError("Decoder::Run without a prepared step");
  }
  const int64_t T = p.tokens, R = p.sampled;
  kernels::ExecutionContext& ctx = *ctx_;
  auto rows = [](const Tensor& t, int64_t n) { return *t.Slice(0, 0, n); };
  Tensor hidden = rows(ws_.hidden, T);
  LOOM_RETURN_IF_ERROR(
      kernels::Embedding(ctx, p.ids, embed_, comm_->rank() * embed_.size(0), hidden));
  LOOM_RETURN_IF_ERROR(comm_->AllReduceSum(hidden));
  Tensor residual = rows(ws_.residual, T);
  for (int64_t i = 0; i < static_cast<int64_t>(layers_.size()); ++i) {
    LOOM_RETURN_IF_ERROR(RunLayer(i, layers_[i], *p.attention, hidden, residual, p.positions,
                                  p.rope_cos_sin, p.slots, cache));
  }
  LOOM_RETURN_IF_ERROR(kernels::FusedAddRmsNorm(ctx, hidden, residual, final_norm_,
                                                static_cast<float>(config_.rms_norm_eps)));

  // A step of mid-prompt chunks only: the K/V is written, nothing is sampled (every rank sees
  // the same step, so all skip the LM head's collective together).
  if (R == 0) return ctx.Allocate(DType::kF32, {0, config_.vocab_size});
  Tensor selected = rows(ws_.selected, R);
  LOOM_RETURN_IF_ERROR(kernels::GatherRows(ctx, hidden, p.logits_rows, selected));
  Tensor local_logits = rows(ws_.local_logits, R);
  LOOM_RETURN_IF_ERROR(lm_head_.Forward(ctx, selected, local_logits));
  Tensor logits = local_logits;
  if (comm_->world_size() > 1) {
    logits = rows(ws_.gathered, R);
    LOOM_RETURN_IF_ERROR(comm_->AllGatherLastDim(local_logits, logits));
  }
  if (logits.size(1) == config_.vocab_size) return logits;
  // The padded vocabulary's last columns go (they are the zero rows of the last shard).
  LOOM_ASSIGN_OR_RETURN(Tensor real, logits.Slice(1, 0, config_.vocab_size));
  Tensor out = rows(ws_.logits, R);
  LOOM_RETURN_IF_ERROR(kernels::Copy(ctx, real, out));
  return out;
}

absl::Status Decoder::DynamicRopeRows(const Flat& batch, Tensor& cos_sin,
                                      std::vector<int32_t>& rows) const {
  const ModelConfig& c = config_;
  const int64_t T = static_cast<int64_t>(batch.token_ids.size()), D = c.head_dim;
  const kernels::AttentionBatch& a = batch.attention;
  if (a.query_start.size() != a.context_len.size() + 1 || a.query_start.back() != T) {
    return absl::InvalidArgumentError("forward batch: attention rows do not cover the tokens");
  }
  rows.resize(static_cast<size_t>(T));
  for (size_t s = 0; s < a.context_len.size(); ++s) {
    // The sequence's length after this step: HF's max(position_ids) + 1.
    LOOM_ASSIGN_OR_RETURN(
        const kernels::RopeFrequencies f,
        kernels::ComputeRopeFrequencies(D, c.rope_theta, c.rope_scaling, c.max_position_embeddings,
                                        a.context_len[s]));
    for (int32_t r = a.query_start[s]; r < a.query_start[s + 1]; ++r) {
      kernels::RopeCosSinRow(f, batch.positions[r], cos_sin.data<float>() + r * D);
      rows[r] = r;
    }
  }
  return absl::OkStatus();
}

// HF's order per layer: h = x + attn(norm(x)); out = h + mlp(norm(h)). The residual add of one
// sub-block is fused into the next norm, so `hidden` carries the sub-block output and
// `residual` the running sum.
absl::Status Decoder::RunLayer(int64_t index, Layer& L, const kernels::AttentionPlan& attention,
                               Tensor& hidden, Tensor& residual, const Tensor& positions,
                               const Tensor& rope_cos_sin, const Tensor& slots, KvCache& cache) {
  kernels::ExecutionContext& ctx = *ctx_;
  const ModelConfig& c = config_;
  const float eps = static_cast<float>(c.rms_norm_eps);
  const int64_t T = hidden.size(0), D = c.head_dim;
  const int64_t Hq = local_q_heads_, Hk = local_kv_heads_;
  if (index == 0) {
    LOOM_RETURN_IF_ERROR(kernels::Copy(ctx, hidden, residual));
    LOOM_RETURN_IF_ERROR(kernels::RmsNorm(ctx, residual, L.input_norm, eps, hidden));
  } else {
    LOOM_RETURN_IF_ERROR(kernels::FusedAddRmsNorm(ctx, hidden, residual, L.input_norm, eps));
  }

  auto rows = [T](const Tensor& t) { return *t.Slice(0, 0, T); };
  Tensor qkv = rows(ws_.qkv);
  LOOM_RETURN_IF_ERROR(L.qkv.Forward(ctx, hidden, qkv));
  Tensor q = rows(ws_.q), k = rows(ws_.k), v = rows(ws_.v);
  {
    LOOM_ASSIGN_OR_RETURN(Tensor q_src, qkv.Slice(1, 0, Hq * D));
    LOOM_ASSIGN_OR_RETURN(Tensor k_src, qkv.Slice(1, Hq * D, Hk * D));
    LOOM_ASSIGN_OR_RETURN(Tensor v_src, qkv.Slice(1, (Hq + Hk) * D, Hk * D));
    Tensor q2 = *q.View({T, Hq * D}), k2 = *k.View({T, Hk * D}), v2 = *v.View({T, Hk * D});
    LOOM_RETURN_IF_ERROR(kernels::Copy(ctx, q_src, q2));
    LOOM_RETURN_IF_ERROR(kernels::Copy(ctx, k_src, k2));
    LOOM_RETURN_IF_ERROR(kernels::Copy(ctx, v_src, v2));
  }
  if (c.qk_norm) {
    Tensor q_rows = *q.View({T * Hq, D}), k_rows = *k.View({T * Hk, D});
    LOOM_RETURN_IF_ERROR(kernels::RmsNorm(ctx, q_rows, L.q_norm, eps, q_rows));
    LOOM_RETURN_IF_ERROR(kernels::RmsNorm(ctx, k_rows, L.k_norm, eps, k_rows));
  }
  LOOM_RETURN_IF_ERROR(kernels::ApplyRope(ctx, q, k, positions, rope_cos_sin));
  LOOM_RETURN_IF_ERROR(kernels::WriteKvCache(ctx, k, v, slots, cache.k(index), cache.v(index)));
  Tensor attn = rows(ws_.attn);
  LOOM_RETURN_IF_ERROR(kernels::PagedAttention(ctx, q, cache.k(index), cache.v(index), attention,
                                               1.0f / std::sqrt(static_cast<float>(D)),
                                               c.Window(index), attn));
  LOOM_RETURN_IF_ERROR(L.o.Forward(ctx, *attn.View({T, Hq * D}), hidden));
  LOOM_RETURN_IF_ERROR(comm_->AllReduceSum(hidden));

  LOOM_RETURN_IF_ERROR(kernels::FusedAddRmsNorm(ctx, hidden, residual, L.post_attention_norm, eps));
  Tensor gate_up = rows(ws_.gate_up);
  LOOM_RETURN_IF_ERROR(L.gate_up.Forward(ctx, hidden, gate_up));
  Tensor act = rows(ws_.act);
  LOOM_RETURN_IF_ERROR(kernels::SiluAndMul(ctx, gate_up, act));
  LOOM_RETURN_IF_ERROR(L.down.Forward(ctx, act, hidden));
  return comm_->AllReduceSum(hidden);
}

}  // namespace loom
