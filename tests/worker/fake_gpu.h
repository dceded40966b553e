// A GPU made of host memory, for running the GPU rank's code on the CPU: tensors it allocates
// are tagged cuda:0 (so every host-only shortcut is refused, as on a real device), kernels run
// the host's implementation, and asynchronous uploads are really deferred — the copy reads the
// staging memory only when a later fence, transfer, kernel or Synchronize reaches it, so code
// that reuses staging memory too early loads wrong weights here. Memory() reports figures the
// test chooses, less what its live tensors hold. With graphs on, a "captured graph" is its
// recording function, run again at replay; memory operations during a capture fail, as a real
// capture's would.
#ifndef LOOM_TESTS_WORKER_FAKE_GPU_H_
#define LOOM_TESTS_WORKER_FAKE_GPU_H_

#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "kernels/backend.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/execution_context.h"

namespace loom::testing {

class FakeGpu : public kernels::ExecutionContext {
 public:
  explicit FakeGpu(kernels::DeviceMemory memory = {int64_t{1} << 40, int64_t{1} << 40},
                   bool graphs = false)
      : host_(kernels::cpu::NewHostContext()), memory_(memory), graphs_(graphs), backend_(*this) {}

  Device device() const override { return Device::Cuda(0); }
  std::string Description() const override { return "fake GPU (host memory)"; }

  absl::StatusOr<Tensor> Allocate(DType dtype, std::vector<int64_t> shape) override {
    LOOM_RETURN_IF_ERROR(NotCapturing("Allocate"));
    Tensor t = Tensor::Empty(dtype, shape);
    const int64_t bytes = static_cast<int64_t>(t.nbytes());
    *live_ += bytes;
    auto storage = std::make_shared<Tensor>(t);
    std::shared_ptr<const void> owner(
        storage->raw_data(), [storage, live = live_, bytes](const void*) { *live -= bytes; });
    return Tensor::Borrow(t.raw_data(), dtype, std::move(shape), std::move(owner), device());
  }
  absl::Status Upload(const Tensor& host, const Tensor& dst) override {
    LOOM_RETURN_IF_ERROR(NotCapturing("Upload"));
    LOOM_RETURN_IF_ERROR(Check("Upload", host, dst));
    Flush(pending_.size());
    std::memcpy(dst.raw_data(), host.raw_data(), host.nbytes());
    upload_bytes += static_cast<int64_t>(host.nbytes());
    return absl::OkStatus();
  }
  absl::Status Download(const Tensor& src, const Tensor& host) override {
    LOOM_RETURN_IF_ERROR(NotCapturing("Download"));
    LOOM_RETURN_IF_ERROR(Check("Download", host, src));
    Flush(pending_.size());
    std::memcpy(host.raw_data(), src.raw_data(), host.nbytes());
    return absl::OkStatus();
  }
  absl::Status UploadAsync(const Tensor& host, const Tensor& dst) override {
    LOOM_RETURN_IF_ERROR(NotCapturing("UploadAsync"));
    LOOM_RETURN_IF_ERROR(Check("UploadAsync", host, dst));
    pending_.push_back({host, dst});
    upload_bytes += static_cast<int64_t>(host.nbytes());
    log.push_back(absl::StrCat("copy ", reinterpret_cast<uintptr_t>(host.raw_data())));
    max_pending = std::max<int64_t>(max_pending, static_cast<int64_t>(pending_.size()));
    return absl::OkStatus();
  }
  absl::StatusOr<uint64_t> RecordFence() override {
    fences_[++last_fence_] = applied_ + pending_.size();
    return last_fence_;
  }
  absl::Status WaitFence(uint64_t fence) override {
    auto it = fences_.find(fence);
    if (it == fences_.end()) return absl::InvalidArgumentError("fence waited twice or unknown");
    if (it->second > applied_) Flush(it->second - applied_);
    fences_.erase(it);
    log.push_back(absl::StrCat("wait ", fence));
    return absl::OkStatus();
  }
  absl::Status Synchronize() override {
    LOOM_RETURN_IF_ERROR(NotCapturing("Synchronize"));
    Flush(pending_.size());
    return absl::OkStatus();
  }
  bool SupportsGraphs() const override { return graphs_; }
  uint64_t ScratchGeneration() const override { return scratch_generation; }
  absl::StatusOr<std::unique_ptr<kernels::DeviceGraph>> CaptureGraph(
      const std::function<absl::Status()>& record) override {
    if (!graphs_) return absl::UnimplementedError("no graphs on this fake GPU");
    capturing_ = true;
    const absl::Status recorded = record();
    capturing_ = false;
    LOOM_RETURN_IF_ERROR(recorded);
    if (fail_captures) return absl::InternalError("capture failed (as the test asked)");
    return std::unique_ptr<kernels::DeviceGraph>(new Graph(record));
  }
  absl::Status ReplayGraph(const kernels::DeviceGraph& graph) override {
    const auto* fake = dynamic_cast<const Graph*>(&graph);
    if (fake == nullptr) return absl::InvalidArgumentError("not this fake's graph");
    return fake->record();
  }
  absl::StatusOr<kernels::DeviceMemory> Memory() const override {
    kernels::DeviceMemory m = memory_;
    m.free_bytes -= *live_;
    return m;
  }
  kernels::Backend& backend() override { return backend_; }

  // What the staging did: "copy <host address>" and "wait <fence>", in order.
  std::vector<std::string> log;
  int64_t max_pending = 0;
  int64_t upload_bytes = 0;  // host to device, by Upload and UploadAsync
  uint64_t scratch_generation = 0;  // a test bumps it as a scratch reallocation would
  bool fail_captures = false;

 private:
  struct Copy {
    Tensor host, dst;
  };
  struct Graph : kernels::DeviceGraph {
    explicit Graph(std::function<absl::Status()> r) : record(std::move(r)) {}
    std::function<absl::Status()> record;
  };
  absl::Status NotCapturing(const char* what) const {
    if (!capturing_) return absl::OkStatus();
    return absl::FailedPreconditionError(absl::StrCat(what, " inside a graph capture"));
  }
  // The host's kernels, after the copies queued before them (stream order).
  class OrderedBackend : public kernels::Backend {
   public:
    explicit OrderedBackend(FakeGpu& gpu) : gpu_(gpu) {}
    kernels::Backend& host() {
      gpu_.Flush(gpu_.pending_.size());
      return gpu_.host_->backend();
    }
    absl::Status Linear(const Tensor& x, const Tensor& w, const Tensor* b, Tensor& o) override {
      return host().Linear(x, w, b, o);
    }
    absl::Status RmsNorm(const Tensor& x, const Tensor& w, float e, Tensor& o) override {
      return host().RmsNorm(x, w, e, o);
    }
    absl::Status FusedAddRmsNorm(Tensor& x, Tensor& r, const Tensor& w, float e) override {
      return host().FusedAddRmsNorm(x, r, w, e);
    }
    absl::Status ApplyRope(Tensor& q, Tensor& k, const Tensor& p, const Tensor& cs) override {
      return host().ApplyRope(q, k, p, cs);
    }
    absl::Status SiluAndMul(const Tensor& g, Tensor& o) override { return host().SiluAndMul(g, o); }
    absl::Status Embedding(const Tensor& i, const Tensor& t, int64_t s, Tensor& o) override {
      return host().Embedding(i, t, s, o);
    }
    absl::Status WriteKvCache(const Tensor& k, const Tensor& v, const Tensor& s, Tensor& kc,
                              Tensor& vc) override {
      return host().WriteKvCache(k, v, s, kc, vc);
    }
    absl::StatusOr<std::unique_ptr<kernels::AttentionPlan>> PlanAttention(
        const kernels::AttentionBatch& b, const Tensor& q, const Tensor& kc,
        int64_t fixed_max_keys) override {
      return host().PlanAttention(b, q, kc, fixed_max_keys);
    }
    absl::Status PagedAttention(const Tensor& q, const Tensor& kc, const Tensor& vc,
                                const kernels::AttentionPlan& p, float s, int64_t w,
                                Tensor& o) override {
      return host().PagedAttention(q, kc, vc, p, s, w, o);
    }
    // The host's Copy is Tensor::CopyFrom, which refuses device tensors: rows by hand.
    absl::Status Copy(const Tensor& src, Tensor& dst) override {
      host();
      const size_t es = DTypeSize(src.dtype());
      if (src.is_contiguous()) {
        std::memcpy(dst.raw_data(), src.raw_data(), src.nbytes());
        return absl::OkStatus();
      }
      const int64_t rows = src.size(0), cols = src.size(1);
      for (int64_t r = 0; r < rows; ++r) {
        std::memcpy(static_cast<char*>(dst.raw_data()) + r * cols * es,
                    static_cast<const char*>(src.raw_data()) + r * src.strides()[0] * es,
                    cols * es);
      }
      return absl::OkStatus();
    }
    absl::Status GatherRows(const Tensor& x, const Tensor& r, Tensor& o) override {
      return host().GatherRows(x, r, o);
    }
    absl::Status ApplyPenalties(Tensor& l, const std::vector<kernels::PenaltyRow>& r) override {
      return host().ApplyPenalties(l, r);
    }
    absl::Status FillHashUniform(const kernels::HashFill& f, Tensor& o) override {
      return host().FillHashUniform(f, o);
    }
    absl::StatusOr<std::vector<int32_t>> Sample(const Tensor& l,
                                                const std::vector<SamplingParams>& p,
                                                const std::vector<uint64_t>& s) override {
      return host().Sample(l, p, s);
    }

   private:
    FakeGpu& gpu_;
  };

  absl::Status Check(const char* what, const Tensor& host, const Tensor& gpu) const {
    if (!host.device().is_cpu() || gpu.device() != device() || host.dtype() != gpu.dtype() ||
        host.shape() != gpu.shape() || !host.is_contiguous() || !gpu.is_contiguous()) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": host ", host.DebugString(), ", device ", gpu.DebugString()));
    }
    return absl::OkStatus();
  }
  void Flush(size_t n) {
    for (size_t i = 0; i < n && !pending_.empty(); ++i) {
      std::memcpy(pending_.front().dst.raw_data(), pending_.front().host.raw_data(),
                  pending_.front().host.nbytes());
      pending_.erase(pending_.begin());
      ++applied_;
    }
  }

  std::unique_ptr<kernels::ExecutionContext> host_;
  kernels::DeviceMemory memory_;
  bool graphs_ = false;
  bool capturing_ = false;
  std::shared_ptr<int64_t> live_ = std::make_shared<int64_t>(0);
  std::vector<Copy> pending_;
  size_t applied_ = 0;
  uint64_t last_fence_ = 0;
  std::map<uint64_t, size_t> fences_;  // fence -> copies applied once it has passed
  OrderedBackend backend_;
};

}  // namespace loom::testing

#endif  // LOOM_TESTS_WORKER_FAKE_GPU_H_
