#include "worker/comm/nccl_communicator.h"

#include <cstring>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "worker/comm/collective_args.h"
#include "kernels/cuda/nccl_check.h"

namespace loom {
namespace {

using Clock = std::chrono::steady_clock;

absl::StatusOr<ncclDataType_t> ReduceType(const Tensor& t) {
  switch (t.dtype()) {
    case DType::kF32:
      return ncclFloat32;
    case DType::kBF16:
      return ncclBfloat16;
    case DType::kF16:
      return ncclFloat16;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("AllReduceSum: tensor must be F32, BF16 or F16, got ", t.DebugString()));
  }
}

// Spins briefly, then sleeps: collectives are usually short, a stuck peer is not.
void Pause(int& polls) {
  if (++polls < 1000) {
    std::this_thread::yield();
  } else {
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
}

absl::Status TimedOut(const char* what, std::chrono::milliseconds timeout) {
  return absl::DeadlineExceededError(absl::StrCat(
      what, " did not finish within ", timeout.count(), " ms (a peer may be gone or behind)"));
}

// Waits for a non-blocking communicator to leave ncclInProgress (after init or after a call
// that enqueues work): until then no other NCCL call may use it, and its work may not be on the
// stream yet.
absl::Status WaitForComm(ncclComm_t comm, Clock::time_point deadline,
                         std::chrono::milliseconds timeout, const char* what) {
  for (int polls = 0;; Pause(polls)) {
    ncclResult_t state = ncclSuccess;
    LOOM_NCCL_RETURN_IF_ERROR(ncclCommGetAsyncError(comm, &state));
    if (state == ncclSuccess) return absl::OkStatus();
    if (state != ncclInProgress) {
      return NcclErrorToStatus(state, "ncclCommGetAsyncError", __FILE__, __LINE__);
    }
    if (Clock::now() > deadline) return TimedOut(what, timeout);
  }
}

absl::Status WithPrefix(const std::string& prefix, const absl::Status& status) {
  if (status.ok()) return status;
  return absl::Status(status.code(), absl::StrCat(prefix, std::string(status.message())));
}

// The sends (on the root) or the receive of a scatter, in one NCCL group so that the root's
// sends to every rank proceed at once. Empty parts are skipped on both sides (a rank's region
// can be empty).
absl::Status QueueScatter(absl::Span<const Tensor> parts, const Tensor& out, int64_t root,
                          int64_t rank, ncclComm_t comm, cudaStream_t stream) {
  LOOM_NCCL_RETURN_IF_ERROR(ncclGroupStart());
  absl::Status queued;
  if (rank != root && out.nbytes() > 0) {
    queued = NcclErrorToStatus(
        ncclRecv(out.raw_data(), out.nbytes(), ncclUint8, static_cast<int>(root), comm, stream),
        "ncclRecv", __FILE__, __LINE__);
  }
  for (size_t r = 0; rank == root && r < parts.size() && queued.ok(); ++r) {
    if (static_cast<int64_t>(r) == root || parts[r].nbytes() == 0) continue;
    queued = NcclErrorToStatus(ncclSend(parts[r].raw_data(), parts[r].nbytes(), ncclUint8,
                                        static_cast<int>(r), comm, stream),
                               "ncclSend", __FILE__, __LINE__);
  }
  // Closed even after a failed call: a group left open would hold back every later NCCL call
  // of this thread, on every communicator.
  const ncclResult_t ended = ncclGroupEnd();
  LOOM_RETURN_IF_ERROR(queued);
  return NcclErrorToStatus(ended, "ncclGroupEnd()", __FILE__, __LINE__);
}

}  // namespace

void NcclCommunicator::CommDeleter::operator()(ncclComm* comm) const { ncclCommDestroy(comm); }

void NcclCommunicator::StreamDeleter::operator()(CUstream_st* stream) const {
  cudaStreamDestroy(stream);
}

void NcclCommunicator::DeviceMemoryDeleter::operator()(void* ptr) const { cudaFree(ptr); }

absl::StatusOr<std::unique_ptr<NcclCommunicator>> NcclCommunicator::Create(
    const NcclOptions& options) {
  const int64_t rank = options.rank, world = options.world_size;
  if (world < 1 || rank < 0 || rank >= world) {
    return absl::InvalidArgumentError(absl::StrCat("NCCL: bad rank ", rank, " of ", world));
  }
  if (options.unique_id.size() != NCCL_UNIQUE_ID_BYTES) {
    return absl::InvalidArgumentError(absl::StrCat("NCCL: the unique id must be ",
                                                   NCCL_UNIQUE_ID_BYTES, " bytes, got ",
                                                   options.unique_id.size()));
  }
  if (options.timeout.count() <= 0) {
    return absl::InvalidArgumentError("NCCL: the timeout must be positive");
  }
  if (options.device < 0) {
    return absl::InvalidArgumentError(absl::StrCat("NCCL: bad device ", options.device));
  }
  const std::string where = absl::StrCat("NCCL init on rank ", rank, " of ", world, " (device ",
                                         options.device, "): ");
  const Clock::time_point deadline = Clock::now() + options.timeout;

  StreamPtr stream;
  DevicePtr barrier_buffer;
  ncclComm_t comm = nullptr;
  absl::Status status = [&]() -> absl::Status {
    LOOM_CUDA_RETURN_IF_ERROR(cudaSetDevice(options.device));
    cudaStream_t s = nullptr;
    LOOM_CUDA_RETURN_IF_ERROR(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    stream.reset(s);
    void* buffer = nullptr;
    LOOM_CUDA_RETURN_IF_ERROR(cudaMalloc(&buffer, sizeof(float)));
    barrier_buffer.reset(buffer);
    LOOM_CUDA_RETURN_IF_ERROR(cudaMemset(buffer, 0, sizeof(float)));

    ncclUniqueId id;
    std::memcpy(id.internal, options.unique_id.data(), NCCL_UNIQUE_ID_BYTES);
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;  // so that a missing peer becomes a timeout, not a hang
    LOOM_NCCL_RETURN_IF_ERROR(ncclCommInitRankConfig(&comm, static_cast<int>(world), id,
                                                     static_cast<int>(rank), &config));
    return WaitForComm(comm, deadline, options.timeout, "ncclCommInitRankConfig");
  }();
  if (!status.ok()) {
    if (comm != nullptr) ncclCommAbort(comm);
    return WithPrefix(where, status);
  }
  return std::unique_ptr<NcclCommunicator>(new NcclCommunicator(
      options, std::move(stream), std::move(barrier_buffer), CommPtr(comm)));
}

NcclCommunicator::NcclCommunicator(const NcclOptions& options, StreamPtr stream,
                                   DevicePtr barrier_buffer, CommPtr comm)
    : rank_(options.rank),
      world_size_(options.world_size),
      device_(options.device),
      timeout_(options.timeout),
      stream_(std::move(stream)),
      barrier_buffer_(std::move(barrier_buffer)),
      comm_(std::move(comm)) {}

NcclCommunicator::~NcclCommunicator() {
  absl::MutexLock lock(&mu_);
  cudaSetDevice(device_);  // the members are released on our device
  if (comm_ == nullptr) return;
  // Finalize flushes outstanding work and may wait for peers; if it fails or takes longer than
  // a collective may, abort instead of destroying (which could block on a missing peer).
  const ncclResult_t r = ncclCommFinalize(comm_.get());  // ncclInProgress: started
  const bool finalized =
      (r == ncclSuccess || r == ncclInProgress) &&
      WaitForComm(comm_.get(), Clock::now() + timeout_, timeout_, "ncclCommFinalize").ok();
  if (!finalized) ncclCommAbort(comm_.release());
}

template <typename Op>
absl::Status NcclCommunicator::Run(const char* name, Op&& op) {
  absl::MutexLock lock(&mu_);
  if (!broken_.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("NCCL ", name, " on rank ", rank_, ": communicator unusable after an earlier ",
                     "failure: ", std::string(broken_.message())));
  }
  const Clock::time_point deadline = Clock::now() + timeout_;
  absl::Status status = [&]() -> absl::Status {
    LOOM_CUDA_RETURN_IF_ERROR(cudaSetDevice(device_));
    if (absl::Status s = op(comm_.get(), stream_.get(), deadline); !s.ok()) return s;
    return WaitLocked(deadline);
  }();
  if (status.ok()) return status;
  broken_ = WithPrefix(absl::StrCat("NCCL ", name, " failed on rank ", rank_, " of ",
                                    world_size_, ": "),
                       status);
  // Unblocks kernels waiting on peers; the stream and buffers stay valid until destruction.
  ncclCommAbort(comm_.release());
  return broken_;
}

absl::Status NcclCommunicator::WaitLocked(Clock::time_point deadline) {
  if (absl::Status s = WaitForComm(comm_.get(), deadline, timeout_, "the collective"); !s.ok()) {
    return s;
  }
  for (int polls = 0;; Pause(polls)) {
    const cudaError_t e = cudaStreamQuery(stream_.get());
    if (e == cudaSuccess) break;
    if (e != cudaErrorNotReady) {
      return CudaErrorToStatus(e, "cudaStreamQuery(stream)", __FILE__, __LINE__);
    }
    ncclResult_t async = ncclSuccess;
    LOOM_NCCL_RETURN_IF_ERROR(ncclCommGetAsyncError(comm_.get(), &async));
    if (async != ncclSuccess && async != ncclInProgress) {
      return NcclErrorToStatus(async, "ncclCommGetAsyncError", __FILE__, __LINE__);
    }
    if (Clock::now() > deadline) return TimedOut("the collective", timeout_);
  }
  // An error raised while the kernels finished (a peer that went away) shows up here.
  ncclResult_t async = ncclSuccess;
  LOOM_NCCL_RETURN_IF_ERROR(ncclCommGetAsyncError(comm_.get(), &async));
  return NcclErrorToStatus(async, "ncclCommGetAsyncError", __FILE__, __LINE__);
}

absl::Status NcclCommunicator::AllReduceSum(Tensor& tensor) {
  if (absl::Status s = CheckContiguous("AllReduceSum", "tensor", tensor); !s.ok()) return s;
  absl::StatusOr<ncclDataType_t> type = ReduceType(tensor);
  if (!type.ok()) return type.status();
  if (tensor.numel() == 0) return absl::OkStatus();
  void* data = tensor.raw_data();
  const size_t count = static_cast<size_t>(tensor.numel());
  return Run("AllReduceSum",
             [&](ncclComm_t comm, cudaStream_t stream, Clock::time_point) -> absl::Status {
               LOOM_NCCL_RETURN_IF_ERROR(
                   ncclAllReduce(data, data, count, *type, ncclSum, comm, stream));
               return absl::OkStatus();
             });
}

absl::Status NcclCommunicator::AllGather(const Tensor& in, Tensor& out) {
  LOOM_RETURN_IF_ERROR(CheckAllGatherArgs(in, out, world_size_));
  if (in.nbytes() == 0) return absl::OkStatus();
  const void* src = in.raw_data();
  void* dst = out.raw_data();
  const size_t bytes = in.nbytes();
  return Run("AllGather",
             [&](ncclComm_t comm, cudaStream_t stream, Clock::time_point) -> absl::Status {
               LOOM_NCCL_RETURN_IF_ERROR(
                   ncclAllGather(src, dst, bytes, ncclUint8, comm, stream));
               return absl::OkStatus();
             });
}

absl::Status NcclCommunicator::AllGatherLastDim(const Tensor& in, Tensor& out) {
  LOOM_RETURN_IF_ERROR(CheckAllGatherLastDimArgs(in, out, world_size_));
  if (in.nbytes() == 0) return absl::OkStatus();
  // NCCL gathers whole buffers rank after rank into [world, rows, n]; rows are independent, so
  // one strided copy per rank interleaves them into out[rows, world * n].
  const size_t row_bytes = static_cast<size_t>(in.shape().back()) * DTypeSize(in.dtype());
  const size_t rows = in.nbytes() / row_bytes;
  const size_t bytes = in.nbytes();
  const size_t world = static_cast<size_t>(world_size_);
  const void* src = in.raw_data();
  auto* dst = static_cast<uint8_t*>(out.raw_data());
  return Run("AllGatherLastDim", [&](ncclComm_t comm, cudaStream_t stream,
                                     Clock::time_point deadline) -> absl::Status {
    void* raw = nullptr;
    LOOM_CUDA_RETURN_IF_ERROR(cudaMallocAsync(&raw, bytes * world, stream));
    // Stream-ordered free: after the copies below, whatever happens in between.
    auto free_on_stream = [stream](void* p) { cudaFreeAsync(p, stream); };
    std::unique_ptr<void, decltype(free_on_stream)> gathered(raw, free_on_stream);
    LOOM_NCCL_RETURN_IF_ERROR(ncclAllGather(src, raw, bytes, ncclUint8, comm, stream));
    // The gather must be on the stream before the copies that read it.
    if (absl::Status s = WaitForComm(comm, deadline, timeout_, "ncclAllGather"); !s.ok()) {
      return s;
    }
    const auto* g = static_cast<const uint8_t*>(raw);
    for (size_t w = 0; w < world; ++w) {
      LOOM_CUDA_RETURN_IF_ERROR(cudaMemcpy2DAsync(dst + w * row_bytes, world * row_bytes,
                                                  g + w * bytes, row_bytes, row_bytes, rows,
                                                  cudaMemcpyDeviceToDevice, stream));
    }
    return absl::OkStatus();
  });
}

absl::Status NcclCommunicator::Broadcast(Tensor& tensor, int64_t root) {
  if (absl::Status s = CheckContiguous("Broadcast", "tensor", tensor); !s.ok()) return s;
  if (root < 0 || root >= world_size_) {
    return absl::InvalidArgumentError(
        absl::StrCat("Broadcast: root ", root, " outside [0, ", world_size_, ")"));
  }
  if (tensor.nbytes() == 0) return absl::OkStatus();
  void* data = tensor.raw_data();
  const size_t bytes = tensor.nbytes();
  return Run("Broadcast",
             [&](ncclComm_t comm, cudaStream_t stream, Clock::time_point) -> absl::Status {
               LOOM_NCCL_RETURN_IF_ERROR(ncclBroadcast(data, data, bytes, ncclUint8,
                                                       static_cast<int>(root), comm, stream));
               return absl::OkStatus();
             });
}

absl::Status NcclCommunicator::Scatter(absl::Span<const Tensor> parts, Tensor& out, int64_t root) {
  LOOM_RETURN_IF_ERROR(CheckScatterArgs(parts, out, root, rank_, world_size_));
  return Run("Scatter",
             [&](ncclComm_t comm, cudaStream_t stream, Clock::time_point) -> absl::Status {
               const void* own = rank_ == root ? parts[root].raw_data() : nullptr;
               if (rank_ == root && out.nbytes() > 0 && out.raw_data() != own) {
                 LOOM_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(out.raw_data(), own, out.nbytes(),
                                                           cudaMemcpyDeviceToDevice, stream));
               }
               return QueueScatter(parts, out, root, rank_, comm, stream);
             });
}

absl::Status NcclCommunicator::Barrier() {
  void* buffer;
  {
    absl::MutexLock lock(&mu_);
    buffer = barrier_buffer_.get();
  }
  return Run("Barrier",
             [&](ncclComm_t comm, cudaStream_t stream, Clock::time_point) -> absl::Status {
               LOOM_NCCL_RETURN_IF_ERROR(
                   ncclAllReduce(buffer, buffer, 1, ncclFloat32, ncclSum, comm, stream));
               return absl::OkStatus();
             });
}

absl::StatusOr<std::unique_ptr<Communicator>> CreateNcclCommunicator(const NcclOptions& options) {
  absl::StatusOr<std::unique_ptr<NcclCommunicator>> comm = NcclCommunicator::Create(options);
  if (!comm.ok()) return comm.status();
  return std::unique_ptr<Communicator>(std::move(*comm));
}

}  // namespace loom
