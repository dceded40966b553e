// The host's ExecutionContext and Backend: kernels/cpu's kernels, memory from Tensor::Empty.
// Compiled without AVX flags, like cpu_isa.cc: creating a context is where a CPU too old for the
// kernels is told so.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "kernels/backend.h"
#include "kernels/checks.h"
#include "kernels/cpu/cpu_isa.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/execution_context.h"

namespace loom::kernels {
namespace {

// The host plans nothing ahead: the plan is the batch, checked by each call.
class HostAttentionPlan : public AttentionPlan {
 public:
  explicit HostAttentionPlan(const AttentionBatch& batch) : batch(batch) {}
  const AttentionBatch& batch;
};

class HostBackend : public Backend {
 public:
  absl::Status Linear(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& out) override {
    return cpu::Linear(x, w, bias, out);
  }
  absl::Status RmsNorm(const Tensor& x, const Tensor& weight, float eps, Tensor& out) override {
    return cpu::RmsNorm(x, weight, eps, out);
  }
  absl::Status FusedAddRmsNorm(Tensor& x, Tensor& residual, const Tensor& weight,
                               float eps) override {
    return cpu::FusedAddRmsNorm(x, residual, weight, eps);
  }
  absl::Status ApplyRope(Tensor& q, Tensor& k, const Tensor& positions,
                         const Tensor& cos_sin) override {
    return cpu::ApplyRope(q, k, positions, cos_sin);
  }
  absl::Status SiluAndMul(const Tensor& gate_up, Tensor& out) override {
    return cpu::SiluAndMul(gate_up, out);
  }
  absl::Status Embedding(const Tensor& ids, const Tensor& table, int64_t vocab_start,
                         Tensor& out) override {
    return cpu::Embedding(ids, table, vocab_start, out);
  }
  absl::Status WriteKvCache(const Tensor& k, const Tensor& v, const Tensor& slot_mapping,
                            Tensor& k_cache, Tensor& v_cache) override {
    return cpu::WriteKvCache(k, v, slot_mapping, k_cache, v_cache);
  }
  absl::StatusOr<std::unique_ptr<AttentionPlan>> PlanAttention(const AttentionBatch& batch,
                                                               const Tensor& q,
                                                               const Tensor& k_cache,
                                                               int64_t) override {
    if (q.dim() != 3 || k_cache.dim() != 4) {
      return absl::InvalidArgumentError(absl::StrCat("PlanAttention: q ", q.DebugString(),
                                                     " and cache ", k_cache.DebugString(),
                                                     " must have rank 3 and 4"));
    }
    LOOM_RETURN_IF_ERROR(
        internal::CheckAttentionBatch(batch, q.size(0), k_cache.size(0), k_cache.size(1)));
    return std::make_unique<HostAttentionPlan>(batch);
  }
  absl::Status PagedAttention(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache,
                              const AttentionPlan& plan, float scale, int64_t window,
                              Tensor& out) override {
    const auto* host = dynamic_cast<const HostAttentionPlan*>(&plan);
    if (host == nullptr) {
      return absl::InvalidArgumentError("PagedAttention: the plan was made for another device");
    }
    return cpu::PagedAttention(q, k_cache, v_cache, host->batch, scale, window, out);
  }
  absl::Status Copy(const Tensor& src, Tensor& dst) override { return dst.CopyFrom(src); }
  absl::Status GatherRows(const Tensor& x, const Tensor& rows, Tensor& out) override {
    const int64_t T = x.size(0), H = x.size(1), R = rows.size(0);
    const int32_t* r = rows.data<int32_t>();
    for (int64_t i = 0; i < R; ++i) {
      if (r[i] < 0 || r[i] >= T) {
        return absl::InvalidArgumentError(
            absl::StrCat("GatherRows: row ", r[i], " outside [0, ", T, ")"));
      }
    }
    for (int64_t i = 0; i < R; ++i) {
      std::memcpy(out.data<float>() + i * H, x.data<float>() + int64_t{r[i]} * x.strides()[0],
                  static_cast<size_t>(H) * sizeof(float));
    }
    return absl::OkStatus();
  }
  absl::Status ApplyPenalties(Tensor& logits, const std::vector<PenaltyRow>& rows) override {
    return cpu::ApplyPenalties(logits, rows);
  }
  absl::Status FillHashUniform(const HashFill& fill, Tensor& out) override {
    return cpu::FillHashUniform(fill, out);
  }
  absl::StatusOr<std::vector<int32_t>> Sample(const Tensor& logits,
                                              const std::vector<SamplingParams>& params,
                                              const std::vector<uint64_t>& step) override {
    return cpu::Sample(logits, params, step);
  }
};

absl::Status CheckHostCopy(const char* what, const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype() || a.shape() != b.shape() || !a.is_contiguous() ||
      !b.is_contiguous()) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": cannot copy ", a.DebugString(),
                                                   " into ", b.DebugString(),
                                                   " (same dtype and shape, contiguous)"));
  }
  if (!a.device().is_cpu() || !b.device().is_cpu()) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": ", a.DebugString(), " and ",
                                                   b.DebugString(), " must be host tensors"));
  }
  return absl::OkStatus();
}

class HostExecutionContext : public ExecutionContext {
 public:
  Device device() const override { return Device::Cpu(); }
  // "cpu (avx512)": which kernel variant runs, to read beside a benchmark's numbers.
  std::string Description() const override {
    return absl::StrCat("cpu (", CpuIsaName(ActiveIsa()), ")");
  }
  absl::StatusOr<Tensor> Allocate(DType dtype, std::vector<int64_t> shape) override {
    return Tensor::Empty(dtype, std::move(shape));
  }
  absl::Status Upload(const Tensor& host, const Tensor& dst) override {
    LOOM_RETURN_IF_ERROR(CheckHostCopy("Upload", host, dst));
    if (host.raw_data() != dst.raw_data() && host.nbytes() > 0) {
      std::memcpy(dst.raw_data(), host.raw_data(), host.nbytes());
    }
    return absl::OkStatus();
  }
  absl::Status Download(const Tensor& src, const Tensor& host) override {
    return Upload(src, host);
  }
  absl::Status Synchronize() override { return absl::OkStatus(); }
  absl::StatusOr<DeviceMemory> Memory() const override {
    DeviceMemory m;
    const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    m.total_bytes = static_cast<int64_t>(pages) * page;
    m.free_bytes = m.total_bytes;
    std::ifstream meminfo("/proc/meminfo");
    std::string key;
    int64_t kib = 0;
    std::string unit;
    while (meminfo >> key >> kib >> unit) {
      if (key == "MemAvailable:") {
        m.free_bytes = kib * 1024;
        break;
      }
    }
    return m;
  }
  Backend& backend() override { return backend_; }

 private:
  HostBackend backend_;
};

// Running on would end in SIGILL, or in kernels other than the ones LOOM_CPU_ISA asked for.
void RequireHostCpu() {
  if (const absl::Status cpu = CheckHostCpu(); !cpu.ok()) {
    std::fprintf(stderr, "loom: the host cannot run the CPU kernels: %s\n", cpu.ToString().c_str());
    std::abort();
  }
}

}  // namespace

std::unique_ptr<ExecutionContext> cpu::NewHostContext() {
  RequireHostCpu();
  return std::make_unique<HostExecutionContext>();
}

ExecutionContext& HostContext() {
  static HostExecutionContext* context = [] {
    RequireHostCpu();
    return new HostExecutionContext();
  }();
  return *context;
}

}  // namespace loom::kernels
