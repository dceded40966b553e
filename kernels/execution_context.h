// Where kernels run: one device and what running there takes — on a GPU its stream, library
// handles and scratch memory, on the host its threads. Every kernel entry point (kernels.h)
// takes the context first and dispatches to the context's Backend; the tensors must live on the
// context's device (or, for the host-side arguments each kernel names, on the host).
//
// A context also owns the device's memory operations: tensors allocated on it, copies between it
// and the host, waiting for queued work, and the memory figures the KV cache is sized from.
// Work is queued in order: a kernel, a copy and the next kernel see each other's results, on
// every device. On the host everything runs at once.
//
// Threads: kernels run from one thread at a time (a rank's step thread, or a method holding the
// step lock); Allocate, Upload and Download may also come from another thread (a load staged
// while steps run) and are serialised inside. Every thread binds itself (BindThread) before
// its first use. The host context (HostContext) holds no state of its own.
#ifndef LOOM_KERNELS_EXECUTION_CONTEXT_H_
#define LOOM_KERNELS_EXECUTION_CONTEXT_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "common/device.h"
#include "common/tensor.h"

namespace loom::kernels {

class Backend;  // kernels/backend.h

// Work recorded once and replayed with one launch (a CUDA graph): the same kernels with the
// same arguments on the same memory, whatever that memory holds at replay.
class DeviceGraph {
 public:
  virtual ~DeviceGraph() = default;
};

struct DeviceMemory {
  int64_t total_bytes = 0;
  int64_t free_bytes = 0;  // what an allocation could still get now
};

class ExecutionContext {
 public:
  virtual ~ExecutionContext() = default;

  virtual Device device() const = 0;
  // Makes the calling thread run this context's work (on CUDA: selects its device, which is
  // per thread). Idempotent and cheap.
  virtual absl::Status BindThread() { return absl::OkStatus(); }
  // What describe shows: "cpu (AVX2, FMA, F16C)", "NVIDIA H200 (cuda:0, sm_90, 139.8 GiB)".
  virtual std::string Description() const = 0;

  // A contiguous, zero-filled tensor in this device's memory, released when its last view goes.
  // ResourceExhausted naming the bytes and the device when it does not fit.
  virtual absl::StatusOr<Tensor> Allocate(DType dtype, std::vector<int64_t> shape) = 0;
  // Copies the contiguous host tensor `host` into the contiguous tensor `dst` on this device
  // (same dtype and shape); `host` may be reused as soon as this returns.
  virtual absl::Status Upload(const Tensor& host, const Tensor& dst) = 0;
  // Copies the contiguous tensor `src` on this device into the contiguous host tensor `host`
  // (same dtype and shape), after the work queued before; returns once `host` holds the data.
  virtual absl::Status Download(const Tensor& src, const Tensor& host) = 0;
  // Host memory this device copies from fastest (pinned on CUDA): where loads stage their parts.
  virtual absl::StatusOr<Tensor> AllocateStaging(DType dtype, std::vector<int64_t> shape) {
    return Tensor::Empty(dtype, std::move(shape));
  }
  // Queues a copy of the contiguous host tensor `host` into `dst`, like Upload, but `host` must
  // stay untouched until a fence recorded after this call has been waited for (the copy may
  // still be reading it). On the host the copy is done when this returns.
  virtual absl::Status UploadAsync(const Tensor& host, const Tensor& dst) {
    return Upload(host, dst);
  }
  // A point in the queued work; WaitFence(f) returns once everything queued before f is done.
  // Each fence is waited for at most once.
  virtual absl::StatusOr<uint64_t> RecordFence() { return uint64_t{0}; }
  virtual absl::Status WaitFence(uint64_t /*fence*/) { return absl::OkStatus(); }
  // Waits for the queued work, then reports (and clears) errors only the device saw — a RoPE
  // position or KV slot out of range, checked by the kernel rather than before the launch.
  virtual absl::Status Synchronize() = 0;
  // The device's memory now. The host reports physical memory and what is available.
  virtual absl::StatusOr<DeviceMemory> Memory() const = 0;

  // Device graphs. CaptureGraph runs `record` with the work it queues recorded instead of run;
  // inside, only kernels on memory allocated before (no Allocate, transfers or Synchronize —
  // they fail the capture). Unimplemented where SupportsGraphs() is false (the host: it has no
  // launches to save).
  virtual bool SupportsGraphs() const { return false; }
  // Changes whenever memory the kernels keep for themselves (scratch) moves: graphs captured
  // before read memory that is gone.
  virtual uint64_t ScratchGeneration() const { return 0; }
  virtual absl::StatusOr<std::unique_ptr<DeviceGraph>> CaptureGraph(
      const std::function<absl::Status()>& record) {
    return absl::UnimplementedError(absl::StrCat(Description(), " has no device graphs"));
  }
  virtual absl::Status ReplayGraph(const DeviceGraph& graph) {
    return absl::UnimplementedError(absl::StrCat(Description(), " has no device graphs"));
  }

  // The kernels of this device. Call them through kernels.h, which checks their arguments and
  // devices first.
  virtual Backend& backend() = 0;
};

// The host's context: kernels run on the calling thread's OpenMP threads (kernels/threading.h).
ExecutionContext& HostContext();

// A context on `device`: the host's, or GPU `device.index` among the visible ones. A GPU that
// is not there, or a build without CUDA, is FailedPrecondition naming the device.
absl::StatusOr<std::unique_ptr<ExecutionContext>> CreateExecutionContext(const Device& device);

// How many GPUs this process sees (after CUDA_VISIBLE_DEVICES); 0 without CUDA or a driver.
int VisibleCudaDevices();

// `t` itself when it is a host tensor; otherwise a contiguous host copy of it (Download, so
// after the work queued before). `t` must be contiguous or live on the host.
absl::StatusOr<Tensor> OnHost(ExecutionContext& context, const Tensor& t);

// OK when every defined tensor in `tensors` lives on the context's device; otherwise
// InvalidArgument naming the kernel, the tensor and both devices.
absl::Status CheckOnDevice(const ExecutionContext& context, const char* kernel,
                           std::initializer_list<std::pair<const char*, const Tensor*>> tensors);

}  // namespace loom::kernels

#endif  // LOOM_KERNELS_EXECUTION_CONTEXT_H_
