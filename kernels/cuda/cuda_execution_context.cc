// CreateExecutionContext for a CUDA build, and the GPU's ExecutionContext and Backend: the
// memory operations on DeviceContext's stream, the kernels forwarded to cuda_kernels.h.
#include "kernels/cuda/cuda_execution_context.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "kernels/backend.h"
#include "kernels/cpu/cpu_isa.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/host_util.h"
#include "kernels/cuda/launch.h"

namespace loom::kernels {
namespace cuda {
namespace {

// A plan remembers the context it was uploaded with: its device memory lives on that GPU.
class CudaAttentionPlan : public AttentionPlan {
 public:
  CudaAttentionPlan(const DeviceContext& context, PagedAttentionPlan plan)
      : context(&context), plan(std::move(plan)) {}
  const DeviceContext* context;
  PagedAttentionPlan plan;
};

class CudaBackend : public Backend {
 public:
  explicit CudaBackend(DeviceContext& context) : context_(context) {}

  absl::Status Linear(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& out) override {
    return cuda::Linear(context_, x, w, bias, out);
  }
  absl::Status RmsNorm(const Tensor& x, const Tensor& weight, float eps, Tensor& out) override {
    return cuda::RmsNorm(context_, x, weight, eps, out);
  }
  absl::Status FusedAddRmsNorm(Tensor& x, Tensor& residual, const Tensor& weight,
                               float eps) override {
    return cuda::FusedAddRmsNorm(context_, x, residual, weight, eps);
  }
  absl::Status ApplyRope(Tensor& q, Tensor& k, const Tensor& positions,
                         const Tensor& cos_sin) override {
    return cuda::ApplyRope(context_, q, k, positions, cos_sin);
  }
  absl::Status SiluAndMul(const Tensor& gate_up, Tensor& out) override {
    return cuda::SiluAndMul(context_, gate_up, out);
  }
  absl::Status Embedding(const Tensor& ids, const Tensor& table, int64_t vocab_start,
                         Tensor& out) override {
    return cuda::Embedding(context_, ids, table, vocab_start, out);
  }
  absl::Status WriteKvCache(const Tensor& k, const Tensor& v, const Tensor& slot_mapping,
                            Tensor& k_cache, Tensor& v_cache) override {
    return cuda::WriteKvCache(context_, k, v, slot_mapping, k_cache, v_cache);
  }

  absl::StatusOr<std::unique_ptr<AttentionPlan>> PlanAttention(const AttentionBatch& batch,
                                                               const Tensor& q,
                                                               const Tensor& k_cache,
                                                               int64_t fixed_max_keys) override {
    if (q.dim() != 3 || k_cache.dim() != 4) {
      return absl::InvalidArgumentError(absl::StrCat("PlanAttention: q ", q.DebugString(),
                                                     " and cache ", k_cache.DebugString(),
                                                     " must have rank 3 and 4"));
    }
    AttentionGeometry g;
    g.tokens = q.size(0);
    g.q_heads = q.size(1);
    g.head_dim = q.size(2);
    g.num_blocks = k_cache.size(0);
    g.block_size = k_cache.size(1);
    g.kv_heads = k_cache.size(2);
    g.cache_dtype = k_cache.dtype();
    // A fixed-shape plan goes to the same device memory at every step of its token count, so a
    // graph captured with it reads the current step's tiles.
    DeviceBuffer* persistent = fixed_max_keys > 0 ? &fixed_plans_[g.tokens] : nullptr;
    LOOM_ASSIGN_OR_RETURN(PagedAttentionPlan plan,
                          PlanPagedAttention(context_, batch, g, fixed_max_keys, persistent));
    return std::make_unique<CudaAttentionPlan>(context_, std::move(plan));
  }

  absl::Status PagedAttention(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache,
                              const AttentionPlan& plan, float scale, int64_t window,
                              Tensor& out) override {
    const auto* cuda_plan = dynamic_cast<const CudaAttentionPlan*>(&plan);
    if (cuda_plan == nullptr || cuda_plan->context != &context_) {
      return absl::InvalidArgumentError(absl::StrCat(
          "PagedAttention: the plan was made for another device than cuda:", context_.device()));
    }
    return cuda::PagedAttention(context_, q, k_cache, v_cache, cuda_plan->plan, scale, window, out);
  }

  // The entry point checked the layouts: dst contiguous, src contiguous or 2-D rows.
  absl::Status Copy(const Tensor& src, Tensor& dst) override {
    if (src.nbytes() == 0 || src.raw_data() == dst.raw_data()) return absl::OkStatus();
    if (src.is_contiguous()) {
      LOOM_CUDA_CHECK(cudaMemcpyAsync(dst.raw_data(), src.raw_data(), src.nbytes(),
                                      cudaMemcpyDeviceToDevice, context_.stream()));
      return absl::OkStatus();
    }
    const size_t element = DTypeSize(src.dtype());
    const size_t width = static_cast<size_t>(src.size(1)) * element;
    LOOM_CUDA_CHECK(cudaMemcpy2DAsync(
        dst.raw_data(), width, src.raw_data(), static_cast<size_t>(src.strides()[0]) * element,
        width, static_cast<size_t>(src.size(0)), cudaMemcpyDeviceToDevice, context_.stream()));
    return absl::OkStatus();
  }

  // Row indices live on the device: the kernel checks them, Synchronize() reports bad ones.
  absl::Status GatherRows(const Tensor& x, const Tensor& rows, Tensor& out) override {
    LOOM_CUDA_CHECK(internal::LaunchGatherRows(
        x.data<float>(), x.size(0), x.strides()[0], x.size(1), rows.data<int32_t>(), rows.size(0),
        out.data<float>(), context_.device_errors(), context_.stream()));
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<int32_t>> Sample(const Tensor& logits,
                                              const std::vector<SamplingParams>& params,
                                              const std::vector<uint64_t>& step) override {
    return cuda::Sample(context_, logits, params, step);
  }

  absl::Status ApplyPenalties(Tensor& logits, const std::vector<PenaltyRow>& rows) override {
    std::vector<internal::PenaltyEntry> entries;
    for (size_t r = 0; r < rows.size(); ++r) {
      const PenaltyRow& p = rows[r];
      for (size_t i = 0; i < p.ids.size(); ++i) {
        entries.push_back({static_cast<int32_t>(r), p.ids[i], p.output_counts[i], p.presence,
                           p.frequency, p.repetition});
      }
    }
    if (entries.empty()) return absl::OkStatus();
    const size_t bytes = entries.size() * sizeof(internal::PenaltyEntry);
    LOOM_ASSIGN_OR_RETURN(void* device, context_.Scratch(bytes));
    LOOM_RETURN_IF_ERROR(context_.Upload(entries.data(), bytes, device));
    LOOM_CUDA_CHECK(internal::LaunchApplyPenalties(
        logits.data<float>(), logits.size(1), static_cast<const internal::PenaltyEntry*>(device),
        static_cast<int64_t>(entries.size()), context_.stream()));
    return absl::OkStatus();
  }

  absl::Status FillHashUniform(const HashFill& f, Tensor& out) override {
    // The entry point checked out: a contiguous float tensor, all of which are stored types.
    LOOM_CUDA_CHECK(internal::LaunchFillHashUniform(
        {f.key, f.range, f.outer, f.rows, f.inner, f.full_rows, f.start},
        internal::ToStorage(out.dtype()), out.raw_data(),
        context_.stream()));
    return absl::OkStatus();
  }

 private:
  DeviceContext& context_;
  std::map<int64_t, DeviceBuffer> fixed_plans_;  // by token count
};

class CudaGraph : public DeviceGraph {
 public:
  ~CudaGraph() override {
    if (exec != nullptr) (void)cudaGraphExecDestroy(exec);
    if (graph != nullptr) (void)cudaGraphDestroy(graph);
  }
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
};

class CudaExecutionContext : public ExecutionContext {
 public:
  CudaExecutionContext(std::unique_ptr<DeviceContext> context, std::string description)
      : context_(std::move(context)), description_(std::move(description)), backend_(*context_) {}
  ~CudaExecutionContext() override {
    for (auto& [id, event] : fences_) (void)cudaEventDestroy(event);
  }

  Device device() const override { return Device::Cuda(context_->device()); }
  std::string Description() const override { return description_; }
  absl::Status BindThread() override {
    LOOM_CUDA_CHECK(cudaSetDevice(context_->device()));
    return absl::OkStatus();
  }

  absl::StatusOr<Tensor> Allocate(DType dtype, std::vector<int64_t> shape) override {
    std::lock_guard<std::mutex> lock(transfer_mu_);
    LOOM_CUDA_CHECK(cudaSetDevice(context_->device()));
    LOOM_ASSIGN_OR_RETURN(Tensor t, AllocateDeviceTensor(dtype, std::move(shape)));
    if (t.nbytes() > 0) {
      LOOM_CUDA_CHECK(cudaMemsetAsync(t.raw_data(), 0, t.nbytes(), context_->stream()));
    }
    return t;
  }

  absl::Status Upload(const Tensor& host, const Tensor& dst) override {
    LOOM_RETURN_IF_ERROR(CheckTransfer("Upload", host, dst));
    // The pinned staging buffer is shared: a load's uploads and a step's take turns.
    std::lock_guard<std::mutex> lock(transfer_mu_);
    LOOM_CUDA_CHECK(cudaSetDevice(context_->device()));
    return context_->Upload(host.raw_data(), host.nbytes(), dst.raw_data());
  }

  absl::Status Download(const Tensor& src, const Tensor& host) override {
    LOOM_RETURN_IF_ERROR(CheckTransfer("Download", host, src));
    std::lock_guard<std::mutex> lock(transfer_mu_);
    LOOM_CUDA_CHECK(cudaSetDevice(context_->device()));
    return CopyToHost(*context_, src, host);
  }

  absl::StatusOr<Tensor> AllocateStaging(DType dtype, std::vector<int64_t> shape) override {
    int64_t numel = 1;
    for (int64_t s : shape) numel *= s;
    const size_t bytes = std::max<size_t>(static_cast<size_t>(numel) * DTypeSize(dtype), 64);
    void* data = nullptr;
    LOOM_CUDA_CHECK(cudaMallocHost(&data, bytes));
    std::shared_ptr<void> owner(data, [](void* p) { (void)cudaFreeHost(p); });
    return Tensor::Borrow(data, dtype, std::move(shape), std::move(owner));
  }

  absl::Status UploadAsync(const Tensor& host, const Tensor& dst) override {
    LOOM_RETURN_IF_ERROR(CheckTransfer("UploadAsync", host, dst));
    std::lock_guard<std::mutex> lock(transfer_mu_);
    LOOM_CUDA_CHECK(cudaSetDevice(context_->device()));
    if (host.nbytes() == 0) return absl::OkStatus();
    // Straight from the caller's (pinned) memory: no staging copy, a true DMA.
    LOOM_CUDA_CHECK(cudaMemcpyAsync(dst.raw_data(), host.raw_data(), host.nbytes(),
                                    cudaMemcpyHostToDevice, context_->stream()));
    return absl::OkStatus();
  }

  absl::StatusOr<uint64_t> RecordFence() override {
    std::lock_guard<std::mutex> lock(transfer_mu_);
    LOOM_CUDA_CHECK(cudaSetDevice(context_->device()));
    cudaEvent_t event = nullptr;
    LOOM_CUDA_CHECK(cudaEventCreateWithFlags(&event, cudaEventDisableTiming));
    const cudaError_t recorded = cudaEventRecord(event, context_->stream());
    if (recorded != cudaSuccess) {
      (void)cudaEventDestroy(event);
      LOOM_CUDA_CHECK(recorded);
    }
    const uint64_t id = ++last_fence_;
    fences_[id] = event;
    return id;
  }

  absl::Status WaitFence(uint64_t fence) override {
    cudaEvent_t event = nullptr;
    {
      std::lock_guard<std::mutex> lock(transfer_mu_);
      auto it = fences_.find(fence);
      if (it == fences_.end()) {
        return absl::InvalidArgumentError(absl::StrCat("WaitFence: no fence ", fence));
      }
      event = it->second;
      fences_.erase(it);
    }
    const cudaError_t waited = cudaEventSynchronize(event);
    (void)cudaEventDestroy(event);
    LOOM_CUDA_CHECK(waited);
    return absl::OkStatus();
  }

  absl::Status Synchronize() override { return context_->Synchronize(); }

  bool SupportsGraphs() const override { return true; }
  uint64_t ScratchGeneration() const override { return context_->scratch_generation(); }

  absl::StatusOr<std::unique_ptr<DeviceGraph>> CaptureGraph(
      const std::function<absl::Status()>& record) override {
    LOOM_RETURN_IF_ERROR(BindThread());
    // Thread-local mode: an unsafe call from this thread (a cudaMalloc, a synchronise) fails
    // the capture instead of running; other threads (a load's uploads) are not caught in it.
    LOOM_CUDA_CHECK(cudaStreamBeginCapture(context_->stream(), cudaStreamCaptureModeThreadLocal));
    const absl::Status recorded = record();
    cudaGraph_t graph = nullptr;
    const cudaError_t ended = cudaStreamEndCapture(context_->stream(), &graph);
    auto captured = std::make_unique<CudaGraph>();
    captured->graph = graph;
    if (!recorded.ok()) return recorded;
    LOOM_CUDA_CHECK(ended);
    LOOM_CUDA_CHECK(cudaGraphInstantiate(&captured->exec, graph, 0));
    return std::unique_ptr<DeviceGraph>(std::move(captured));
  }

  absl::Status ReplayGraph(const DeviceGraph& graph) override {
    const auto* cuda = dynamic_cast<const CudaGraph*>(&graph);
    if (cuda == nullptr || cuda->exec == nullptr) {
      return absl::InvalidArgumentError("ReplayGraph: not a graph captured on a CUDA context");
    }
    LOOM_CUDA_CHECK(cudaGraphLaunch(cuda->exec, context_->stream()));
    return absl::OkStatus();
  }

  absl::StatusOr<DeviceMemory> Memory() const override {
    // cudaMemGetInfo reports the calling thread's current device.
    LOOM_CUDA_CHECK(cudaSetDevice(context_->device()));
    size_t free_bytes = 0, total_bytes = 0;
    LOOM_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
    DeviceMemory m;
    m.total_bytes = static_cast<int64_t>(total_bytes);
    m.free_bytes = static_cast<int64_t>(free_bytes);
    return m;
  }

  Backend& backend() override { return backend_; }
  DeviceContext& device_context() { return *context_; }

 private:
  // `host` on the host, `gpu` on this GPU, alike and contiguous.
  absl::Status CheckTransfer(const char* what, const Tensor& host, const Tensor& gpu) const {
    if (!host.defined() || !gpu.defined() || host.dtype() != gpu.dtype() ||
        host.shape() != gpu.shape() || !host.is_contiguous() || !gpu.is_contiguous()) {
      return absl::InvalidArgumentError(absl::StrCat(what, ": host ", host.DebugString(),
                                                     " and device ", gpu.DebugString(),
                                                     " must be contiguous and alike"));
    }
    if (!host.device().is_cpu() || gpu.device() != device()) {
      return absl::InvalidArgumentError(absl::StrCat(
          what, ": the host tensor is on ", host.device().ToString(), " and the device tensor on ",
          gpu.device().ToString(), "; they must be on cpu and ", device().ToString()));
    }
    return absl::OkStatus();
  }

  std::unique_ptr<DeviceContext> context_;
  std::string description_;
  CudaBackend backend_;
  std::mutex transfer_mu_;  // Allocate, Upload, Download from a loading thread and the step's
  uint64_t last_fence_ = 0;
  std::map<uint64_t, cudaEvent_t> fences_;  // recorded and not yet waited for
};

}  // namespace

absl::StatusOr<std::unique_ptr<ExecutionContext>> NewCudaExecutionContext(
    std::unique_ptr<DeviceContext> device) {
  cudaDeviceProp props{};
  LOOM_CUDA_CHECK(cudaGetDeviceProperties(&props, device->device()));
  char gib[32];
  std::snprintf(gib, sizeof(gib), "%.1f", static_cast<double>(props.totalGlobalMem) / (1 << 30));
  std::string description = absl::StrCat(props.name, " (cuda:", device->device(), ", sm_",
                                         props.major, props.minor, ", ", gib, " GiB)");
  return std::make_unique<CudaExecutionContext>(std::move(device), std::move(description));
}

DeviceContext* DeviceContextOf(ExecutionContext& context) {
  auto* gpu = dynamic_cast<CudaExecutionContext*>(&context);
  return gpu != nullptr ? &gpu->device_context() : nullptr;
}

}  // namespace cuda

namespace {

// How many GPUs the runtime sees, and its error when it sees none for a reason.
int CountDevices(cudaError_t* error) {
  int count = 0;
  *error = cudaGetDeviceCount(&count);
  if (*error != cudaSuccess) {
    // Clear it, or the next launch's cudaGetLastError() would report it again.
    (void)cudaGetLastError();
    return 0;
  }
  return count;
}

}  // namespace

int VisibleCudaDevices() {
  cudaError_t error = cudaSuccess;
  return CountDevices(&error);
}

absl::StatusOr<std::unique_ptr<ExecutionContext>> CreateExecutionContext(const Device& device) {
  if (device.is_cpu()) {
    LOOM_RETURN_IF_ERROR(CheckHostCpu());  // a CPU below the kernels' baseline: an error
    return cpu::NewHostContext();
  }
  const std::string name = device.ToString();
  cudaError_t error = cudaSuccess;
  const int count = CountDevices(&error);
  if (count == 0) {
    const char* visible = std::getenv("CUDA_VISIBLE_DEVICES");
    return absl::FailedPreconditionError(absl::StrCat(
        "device ", name, ": no CUDA device is visible (CUDA_VISIBLE_DEVICES",
        visible != nullptr ? absl::StrCat("=", visible) : std::string(" unset"),
        "; driver: ", error != cudaSuccess ? cudaGetErrorString(error) : "no devices", ")"));
  }
  if (device.index < 0 || device.index >= count) {
    return absl::FailedPreconditionError(absl::StrCat(
        "device ", name, ": only ", count, count == 1 ? " CUDA device is" : " CUDA devices are",
        " visible (0..", count - 1, ")"));
  }
  absl::StatusOr<std::unique_ptr<cuda::DeviceContext>> context =
      cuda::DeviceContext::Create({device.index});
  if (!context.ok()) {
    return absl::Status(context.status().code(),
                        absl::StrCat("device ", name, ": ", context.status().message()));
  }
  return cuda::NewCudaExecutionContext(std::move(*context));
}

}  // namespace loom::kernels
