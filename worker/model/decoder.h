// The one decoder for the whole Llama family (Llama 2/3, Mistral, Qwen2, Qwen3), driven by
// ModelConfig flags: q/k/v, o and MLP biases, per-head q/k RMSNorm, tied embeddings, rope scaling
// (static or dynamic), per-layer sliding windows, head_dim, GQA. It holds this rank's shard of
// every weight and runs the forward pass over a flat batch of tokens from many sequences against
// the paged KV cache.
//
// Weights are loaded by name (HF names, full tensors) through LoadWeight, or part by part through
// WritePart, whatever their source; each layer copies its own slice into buffers allocated once
// at Create, so reloading keeps every pointer stable. Weights, the activation workspace and the
// kernels live on DecoderOptions::context's device; one code path serves every device (no
// device tests here: the kernels dispatch). Not thread-safe: one caller runs Forward at a time.
//
// Tensor parallelism (DecoderOptions::comm): attention heads and intermediate_size must divide
// over the ranks; KV heads divide over the ranks or, when fewer, are replicated (each rank holds
// one); the vocabulary is padded to a multiple of the TP size. Anything else fails at Create.
#ifndef LOOM_WORKER_MODEL_DECODER_H_
#define LOOM_WORKER_MODEL_DECODER_H_

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model_config.h"
#include "common/step.h"
#include "common/tensor.h"
#include "kernels/execution_context.h"
#include "kernels/kernels.h"
#include "worker/comm/communicator.h"
#include "worker/kv_cache.h"
#include "worker/layers/parallel_linear.h"
#include "worker/loader/staged_upload.h"
#include "worker/model/parameter_info.h"

namespace loom {

struct DecoderOptions {
  DType weight_dtype = DType::kBF16;  // storage of the matmul and embedding weights
  // Where weights, activations and kernels live; null = the host (kernels::HostContext()).
  // Borrowed: it must outlive the decoder. The communicator must work on the same device.
  kernels::ExecutionContext* context = nullptr;
  Communicator* comm = nullptr;  // null = single rank
  // The largest step the workspace is planned for at Create: tokens per step and sampled
  // sequences per step (0: planned by the first steps, growing when a larger one comes).
  int64_t max_tokens = 0;
  int64_t max_sampled = 0;
};

class Decoder {
 public:
  static absl::StatusOr<std::unique_ptr<Decoder>> Create(const ModelConfig& config,
                                                         const DecoderOptions& options);

  const ModelConfig& config() const { return config_; }
  kernels::ExecutionContext& context() const { return *ctx_; }
  DType weight_dtype() const { return options_.weight_dtype; }
  // Every parameter the checkpoint must provide (tied LM head excluded), with the region this
  // rank holds, in a stable order.
  const std::vector<ParameterInfo>& Parameters() const { return parameters_; }
  // Loads parameter `name` from `t`: the full tensor (this rank keeps its slice) or already this
  // rank's part (shape local_shape()). Any float dtype. Unknown names and other shapes are errors
  // that change nothing.
  absl::Status LoadWeight(const std::string& name, const Tensor& t);
  // A view of this rank's part of `name` in the model's own buffer, on the model's device.
  absl::StatusOr<Tensor> Part(const std::string& name) const;
  // The part's contents on the host (what sharded state saves): the buffer itself on a host
  // model, a copy from the device otherwise.
  absl::StatusOr<Tensor> HostPart(const std::string& name) const;
  // Writes this rank's part of `name` through `fill`, which fills a contiguous host tensor of the
  // part's shape and dtype: the part itself on a host model; on a device, a buffer of `staging`
  // (loader/staged_upload.h) whose copy is queued — the part holds the data once
  // staging->Finish() returns — or, without one, a temporary copied before this returns.
  // Loaders read or generate straight into it.
  absl::Status WritePart(const std::string& name,
                         const std::function<absl::Status(Tensor& host)>& fill,
                         StagedUpload* staging = nullptr);
  // Copies every weight of `other` (same config and TP layout) into this decoder's buffers, in
  // place: pointers stay stable.
  absl::Status CopyWeightsFrom(const Decoder& other);
  // Exchanges the weight buffers of this decoder and `other` (same config, TP layout, dtype and
  // device) in constant time: tensors are handles, no byte moves. The workspace, the RoPE table
  // and everything else stay with their decoder, so a serving decoder switches to a staged set
  // between two steps (a commit) and back (a rollback). Its buffer addresses change with the
  // set (BufferAddressDigest), which is how device graphs know the set they were captured for.
  absl::Status SwapWeights(Decoder& other);
  // Frees every weight buffer (a level-2 sleep, or a level-1 one once they are offloaded): the
  // decoder keeps its layout and workspace, and runs nothing until a SwapWeights brings a set.
  void DropWeights();
  bool has_weights() const { return embed_.defined(); }

  // Shape of one rank's KV cache for this model.
  KvCacheShape CacheShape(int64_t block_size) const;

  // Runs one step (every sequence's tokens, flattened into one batch), writing their K/V into
  // `cache`. Returns f32 logits [sampled, vocab_size] on the model's device: the last token's row
  // of each sequence with sample = true, in step order ([0, vocab_size] when none samples). They
  // live in the workspace, which the next step overwrites. The step's block tables
  // must cover its positions (ModelRunner checks them against the cache).
  absl::StatusOr<Tensor> Forward(const StepInput& step, KvCache& cache);
  // Forward in two halves, for device graphs (worker/decode_graphs.h): Prepare checks the step
  // and uploads everything it varies in — token ids, positions, KV slots, the attention plan
  // (fixed_max_keys > 0: a fixed launch shape, kernels.h) — into the workspace; Run queues only
  // kernels on memory that stays put, so a captured Run replays any step Prepare wrote of the
  // same token and sampled counts. Run uses the last Prepare's step.
  absl::Status Prepare(const StepInput& step, KvCache& cache, int64_t fixed_max_keys);
  absl::StatusOr<Tensor> Run(KvCache& cache);
  // Changes whenever the activation workspace is reallocated (its addresses move).
  uint64_t WorkspaceGeneration() const { return workspace_generation_; }

  // A digest of where every weight buffer lives: equal before and after a reload or commit
  // proves the pointers stayed put (what captured CUDA graphs rely on).
  uint64_t BufferAddressDigest() const;

  // Bytes of weights held by this rank.
  int64_t WeightBytes() const;
  // Bytes of the activation workspace (what the largest step planned so far needs).
  int64_t WorkspaceBytes() const;

 private:
  // The step as the kernels take it: T tokens from B sequences, flattened.
  struct Flat {
    std::vector<int32_t> token_ids;  // [T]
    std::vector<int32_t> positions;  // [T]
    std::vector<int64_t> slots;      // [T] flat KV slot of each token
    kernels::AttentionBatch attention;
    std::vector<int32_t> logits_rows;  // rows whose logits are returned (each sampled seq's last)
  };
  static Flat Flatten(const StepInput& step, int64_t block_size);
  // One step's activations, planned for the largest step and reused: no allocation on the hot
  // path and fixed addresses (what device graphs need). A step larger than the plan grows it,
  // which moves the addresses; serving plans it once from the scheduler's limits.
  struct Workspace {
    int64_t tokens = 0, sampled = 0;
    Tensor hidden, residual, qkv, q, k, v, attn, gate_up, act, rope;  // [tokens, ...]
    Tensor ids, positions, slots;                                     // [tokens], uploaded
    Tensor selected, local_logits, gathered, logits, rows;            // [sampled, ...]
    Tensor rope_host;  // dynamic rope's per-token table, made on the host, then uploaded
  };
  absl::Status Reserve(int64_t tokens, int64_t sampled);
  struct Layer {
    Tensor input_norm, post_attention_norm;  // f32 [H]
    Tensor q_norm, k_norm;                   // f32 [D] (qk_norm only)
    ParallelLinear qkv, o, gate_up, down;
  };
  Decoder() = default;
  absl::Status Build();
  // What Prepare staged for Run.
  struct Prepared {
    int64_t tokens = 0, sampled = 0;
    Tensor ids, positions, slots, logits_rows, rope_cos_sin;
    std::unique_ptr<kernels::AttentionPlan> attention;
  };
  absl::Status RunLayer(int64_t index, Layer& layer, const kernels::AttentionPlan& attention,
                        Tensor& hidden, Tensor& residual, const Tensor& positions,
                        const Tensor& rope_cos_sin, const Tensor& slots, KvCache& cache);
  // Copies host values into the front of a device tensor of the workspace.
  template <typename T>
  absl::StatusOr<Tensor> Stage(const std::vector<T>& values, const Tensor& dst);
  // Dynamic rope: one cos/sin row per token of `batch` (with its sequence's frequencies for
  // this step) and the row index of each token.
  absl::Status DynamicRopeRows(const Flat& batch, Tensor& cos_sin,
                               std::vector<int32_t>& rows) const;

  ModelConfig config_;
  DecoderOptions options_;
  kernels::ExecutionContext* ctx_ = nullptr;
  SingleRankCommunicator single_rank_;
  Communicator* comm_ = nullptr;
  int64_t local_q_heads_ = 0, local_kv_heads_ = 0;
  Tensor embed_;  // [ceil(V / tp), H], the last shard zero-padded
  std::vector<Layer> layers_;
  Tensor final_norm_;
  ParallelLinear lm_head_;
  int64_t max_positions_ = 0;  // ModelConfig::MaxContextLength()
  Workspace ws_;
  uint64_t workspace_generation_ = 0;
  Flat flat_;  // the prepared step (its attention batch backs the plan)
  Prepared prepared_;
  Tensor rope_cos_sin_;  // [max_positions_, D]; undefined for dynamic rope (per step)
  // HF name -> index into parameters_ and parts_.
  std::map<std::string, size_t> index_;
  // Each parameter's part in this rank's buffers (views that share the storage).
  std::vector<Tensor> parts_;
  std::vector<ParameterInfo> parameters_;
};

}  // namespace loom

#endif  // LOOM_WORKER_MODEL_DECODER_H_
