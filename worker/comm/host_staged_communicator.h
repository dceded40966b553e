// Host tensors over a device communicator: the weight collectives of a GPU group (broadcast
// loads, the ranks' agreement on a load's outcome) move host tensors — what loaders read and
// stage — while NCCL moves device memory. Each collective copies its host tensors to the
// device, waits for the copy, runs the inner collective, and copies the results back: the
// bytes between ranks travel over NCCL (NVLink, InfiniBand), each rank's over its own PCIe.
// Device tensors pass straight through. Thread-safe as far as the context's transfers and the
// inner communicator are (both serialise).
#ifndef LOOM_WORKER_COMM_HOST_STAGED_COMMUNICATOR_H_
#define LOOM_WORKER_COMM_HOST_STAGED_COMMUNICATOR_H_

#include <memory>

#include "kernels/execution_context.h"
#include "worker/comm/communicator.h"

namespace loom {

class HostStagedCommunicator : public Communicator {
 public:
  HostStagedCommunicator(std::unique_ptr<Communicator> inner, kernels::ExecutionContext* context)
      : inner_(std::move(inner)), context_(context) {}

  int64_t rank() const override { return inner_->rank(); }
  int64_t world_size() const override { return inner_->world_size(); }
  absl::Status AllReduceSum(Tensor& tensor) override;
  absl::Status AllGatherLastDim(const Tensor& in, Tensor& out) override;
  absl::Status AllGather(const Tensor& in, Tensor& out) override;
  absl::Status Broadcast(Tensor& tensor, int64_t root) override;
  absl::Status Scatter(absl::Span<const Tensor> parts, Tensor& out, int64_t root) override;
  absl::Status Barrier() override { return inner_->Barrier(); }

 private:
  // `host` on the device (uploaded, the copy complete), or `host` itself when already there.
  absl::StatusOr<Tensor> ToDevice(const Tensor& host, bool copy);
  // Copies `device` back into `host` unless they are the same tensor.
  absl::Status ToHost(const Tensor& device, const Tensor& host);

  std::unique_ptr<Communicator> inner_;
  kernels::ExecutionContext* context_;
};

}  // namespace loom

#endif  // LOOM_WORKER_COMM_HOST_STAGED_COMMUNICATOR_H_
