#include "worker/comm/gloo_communicator.h"

#include <signal.h>

#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <stdexcept>
#include <system_error>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "gloo/allgather.h"
#include "gloo/allreduce.h"
#include "gloo/barrier.h"
#include "gloo/broadcast.h"
#include "gloo/math.h"
#include "gloo/rendezvous/context.h"
#include "gloo/rendezvous/file_store.h"
#include "gloo/rendezvous/prefix_store.h"
#include "gloo/transport/tcp/device.h"
#include "gloo/transport/unbound_buffer.h"
#include "gloo/types.h"
#include "worker/comm/collective_args.h"

namespace loom {
namespace {

// Gloo writes to its sockets with writev(2): a peer that dies mid-collective would kill this
// process with SIGPIPE instead of failing the write with EPIPE, which Gloo turns into an
// exception we can report. Leaves a handler someone else installed alone.
void IgnoreSigpipeUnlessHandled() {
  struct sigaction current;
  if (sigaction(SIGPIPE, nullptr, &current) == 0 && current.sa_handler == SIG_DFL) {
    signal(SIGPIPE, SIG_IGN);
  }
}

}  // namespace

absl::StatusOr<std::shared_ptr<gloo::rendezvous::Store>> MakeFileStore(
    const std::string& directory) {
  std::error_code ec;
  std::filesystem::create_directories(directory, ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat("rendezvous directory ", directory, ": ", ec.message()));
  }
  try {
    return std::shared_ptr<gloo::rendezvous::Store>(
        std::make_shared<gloo::rendezvous::FileStore>(directory));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("rendezvous directory ", directory, ": ", e.what()));
  }
}

absl::StatusOr<std::unique_ptr<GlooCommunicator>> GlooCommunicator::Create(
    const GlooOptions& options) {
  const int64_t rank = options.rank, world = options.world_size;
  if (world < 1 || rank < 0 || rank >= world) {
    return absl::InvalidArgumentError(absl::StrCat("Gloo: bad rank ", rank, " of ", world));
  }
  if (options.store == nullptr) {
    return absl::InvalidArgumentError("Gloo: no rendezvous store");
  }
  if (options.timeout.count() <= 0) {
    return absl::InvalidArgumentError("Gloo: the timeout must be positive");
  }
  IgnoreSigpipeUnlessHandled();
  // GLOO_SOCKET_IFNAME (as PyTorch reads it) names the interface whose address the mesh binds;
  // without it, the address of options.hostname (docs/deploy.md).
  const char* iface = std::getenv("GLOO_SOCKET_IFNAME");
  const bool by_iface = iface != nullptr && *iface != '\0';
  try {
    gloo::transport::tcp::attr attr;
    if (by_iface) {
      attr.iface = iface;
    } else {
      attr.hostname = options.hostname;
    }
    std::shared_ptr<gloo::transport::Device> device = gloo::transport::tcp::CreateDevice(attr);
    auto context = std::make_shared<gloo::rendezvous::Context>(static_cast<int>(rank),
                                                               static_cast<int>(world));
    context->setTimeout(options.timeout);
    gloo::rendezvous::PrefixStore store(options.prefix, *options.store);
    context->connectFullMesh(store, device);
    // connectFullMesh can return on one rank while a peer is still finishing its side of the
    // handshake; a rank that then left would fail the peer's connect. The barrier makes a
    // successful Create mean that the whole mesh is up.
    gloo::BarrierOptions barrier(context);
    gloo::barrier(barrier);
    return std::unique_ptr<GlooCommunicator>(new GlooCommunicator(rank, world, context));
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat("Gloo rendezvous failed on rank ", rank, " of ",
                                               world, " (",
                                               by_iface ? absl::StrCat("GLOO_SOCKET_IFNAME=", iface)
                                                        : options.hostname,
                                               ", prefix '",
                                               options.prefix, "'): ", e.what()));
  }
}

GlooCommunicator::GlooCommunicator(int64_t rank, int64_t world_size,
                                   std::shared_ptr<gloo::Context> context)
    : rank_(rank), world_size_(world_size), context_(std::move(context)) {}

GlooCommunicator::~GlooCommunicator() = default;

template <typename Op>
absl::Status GlooCommunicator::Run(const char* name, Op&& op) {
  absl::MutexLock lock(&mu_);
  if (!broken_.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("Gloo ", name, " on rank ", rank_,
                     ": communicator unusable after an earlier failure: ", broken_.message()));
  }
  try {
    op(context_);
    return absl::OkStatus();
  } catch (const std::exception& e) {
    // A Gloo timeout surfaces as an IoException whose text says so; keep Gloo's words.
    broken_ = absl::UnavailableError(absl::StrCat("Gloo ", name, " failed on rank ", rank_, " of ",
                                                  world_size_, ": ", e.what()));
    try {
      context_->closeConnections();
    } catch (const std::exception&) {
      // Already failing; the first error is the one to report.
    }
    return broken_;
  }
}

absl::Status GlooCommunicator::AllReduceSum(Tensor& tensor) {
  if (absl::Status s = CheckF32("AllReduceSum", "tensor", tensor); !s.ok()) return s;
  if (world_size_ == 1 || tensor.numel() == 0) return absl::OkStatus();
  float* data = tensor.data<float>();
  const size_t n = static_cast<size_t>(tensor.numel());
  return Run("AllReduceSum", [&](const std::shared_ptr<gloo::Context>& context) {
    gloo::AllreduceOptions opts(context);
    opts.setOutput(data, n);
    void (*sum)(void*, const void*, const void*, size_t) = &gloo::sum<float>;
    opts.setReduceFunction(sum);
    gloo::allreduce(opts);
  });
}

absl::Status GlooCommunicator::AllGather(const Tensor& in, Tensor& out) {
  LOOM_RETURN_IF_ERROR(CheckAllGatherArgs(in, out, world_size_));
  if (in.nbytes() == 0) return absl::OkStatus();
  if (world_size_ == 1) {
    std::memcpy(out.raw_data(), in.raw_data(), in.nbytes());
    return absl::OkStatus();
  }
  auto* src = static_cast<uint8_t*>(in.raw_data());
  auto* dst = static_cast<uint8_t*>(out.raw_data());
  const size_t bytes = in.nbytes();
  return Run("AllGather", [&](const std::shared_ptr<gloo::Context>& context) {
    gloo::AllgatherOptions opts(context);
    opts.setInput(src, bytes);
    opts.setOutput(dst, bytes * static_cast<size_t>(world_size_));
    gloo::allgather(opts);
  });
}

absl::Status GlooCommunicator::AllGatherLastDim(const Tensor& in, Tensor& out) {
  return AllGatherLastDimByRows(*this, in, out);
}

absl::Status GlooCommunicator::Broadcast(Tensor& tensor, int64_t root) {
  if (absl::Status s = CheckContiguous("Broadcast", "tensor", tensor); !s.ok()) return s;
  if (root < 0 || root >= world_size_) {
    return absl::InvalidArgumentError(
        absl::StrCat("Broadcast: root ", root, " outside [0, ", world_size_, ")"));
  }
  if (world_size_ == 1 || tensor.nbytes() == 0) return absl::OkStatus();
  auto* data = static_cast<uint8_t*>(tensor.raw_data());
  const size_t bytes = tensor.nbytes();
  return Run("Broadcast", [&](const std::shared_ptr<gloo::Context>& context) {
    gloo::BroadcastOptions opts(context);
    opts.setOutput(data, bytes);  // the root sends from it, the others receive into it
    opts.setRoot(static_cast<int>(root));
    gloo::broadcast(opts);
  });
}

absl::Status GlooCommunicator::Scatter(absl::Span<const Tensor> parts, Tensor& out, int64_t root) {
  LOOM_RETURN_IF_ERROR(CheckScatterArgs(parts, out, root, rank_, world_size_));
  if (rank_ == root && out.raw_data() != parts[root].raw_data() && out.nbytes() > 0) {
    std::memcpy(out.raw_data(), parts[root].raw_data(), out.nbytes());
  }
  if (world_size_ == 1) return absl::OkStatus();
  // Each receiver gets its part's size before its bytes: Gloo aborts the process when more
  // bytes arrive than a receive asked for, and silently leaves the rest when fewer do. A
  // receiver whose out does not match takes the bytes into scratch, so the group stays in step,
  // and refuses the call.
  absl::Status mismatch;
  LOOM_RETURN_IF_ERROR(Run("Scatter", [&](const std::shared_ptr<gloo::Context>& context) {
    // Fixed slots: messages between two ranks on one slot arrive in order, and collectives run
    // one at a time.
    const uint64_t size_slot = gloo::Slot::build(gloo::kScatterSlotPrefix, 0);
    const uint64_t data_slot = gloo::Slot::build(gloo::kScatterSlotPrefix, 1);
    const std::chrono::milliseconds timeout = context->getTimeout();
    auto wait_recv = [&](gloo::transport::UnboundBuffer& b) {
      if (!b.waitRecv(timeout)) throw std::runtime_error("receive aborted");
    };
    if (rank_ != root) {
      uint64_t sent = 0;
      auto size = context->createUnboundBuffer(&sent, sizeof(sent));
      size->recv(static_cast<int>(root), size_slot);
      wait_recv(*size);
      if (sent > 0) {
        std::vector<uint8_t> scratch(sent == out.nbytes() ? 0 : sent);
        void* into = scratch.empty() ? out.raw_data() : scratch.data();
        auto data = context->createUnboundBuffer(into, sent);
        data->recv(static_cast<int>(root), data_slot);
        wait_recv(*data);
      }
      if (sent != out.nbytes()) {
        mismatch = absl::InvalidArgumentError(
            absl::StrCat("Scatter: rank ", rank_, " expected ", out.nbytes(), " bytes (",
                         out.DebugString(), "), root ", root, " sent ", sent));
      }
      return;
    }
    // Every send is posted before the first wait, so the ranks receive in parallel.
    std::vector<uint64_t> sizes(world_size_);
    std::vector<std::unique_ptr<gloo::transport::UnboundBuffer>> sends;
    for (int64_t r = 0; r < world_size_; ++r) {
      if (r == root) continue;
      sizes[r] = parts[r].nbytes();
      sends.push_back(context->createUnboundBuffer(&sizes[r], sizeof(uint64_t)));
      sends.back()->send(static_cast<int>(r), size_slot);
      if (sizes[r] == 0) continue;
      sends.push_back(context->createUnboundBuffer(parts[r].raw_data(), sizes[r]));
      sends.back()->send(static_cast<int>(r), data_slot);
    }
    for (auto& send : sends) {
      if (!send->waitSend(timeout)) throw std::runtime_error("send aborted");
    }
  }));
  return mismatch;
}

absl::Status GlooCommunicator::Barrier() {
  if (world_size_ == 1) return absl::OkStatus();
  return Run("Barrier", [](const std::shared_ptr<gloo::Context>& context) {
    gloo::BarrierOptions opts(context);
    gloo::barrier(opts);
  });
}

}  // namespace loom
