// A communicator that waits for an execution context's queued work before each collective.
//
// The NCCL communicator runs on a stream of its own and needs its inputs complete when it
// starts (nccl_communicator.h); the decoder queues the kernels that write them on its context's
// stream. Waiting here keeps the decoder device-neutral and the order exact, at the price of one
// synchronisation per collective (joining the two streams with an event is the faster next
// step). On the host the wait is free.
#ifndef LOOM_WORKER_COMM_DEVICE_ORDERED_COMMUNICATOR_H_
#define LOOM_WORKER_COMM_DEVICE_ORDERED_COMMUNICATOR_H_

#include <memory>

#include "common/status.h"
#include "kernels/execution_context.h"
#include "worker/comm/communicator.h"

namespace loom {

class DeviceOrderedCommunicator : public Communicator {
 public:
  DeviceOrderedCommunicator(std::unique_ptr<Communicator> inner, kernels::ExecutionContext* context)
      : inner_(std::move(inner)), context_(context) {}

  int64_t rank() const override { return inner_->rank(); }
  int64_t world_size() const override { return inner_->world_size(); }
  absl::Status AllReduceSum(Tensor& tensor) override {
    LOOM_RETURN_IF_ERROR(context_->Synchronize());
    return inner_->AllReduceSum(tensor);
  }
  absl::Status AllGatherLastDim(const Tensor& in, Tensor& out) override {
    LOOM_RETURN_IF_ERROR(context_->Synchronize());
    return inner_->AllGatherLastDim(in, out);
  }
  absl::Status AllGather(const Tensor& in, Tensor& out) override {
    LOOM_RETURN_IF_ERROR(context_->Synchronize());
    return inner_->AllGather(in, out);
  }
  absl::Status Broadcast(Tensor& tensor, int64_t root) override {
    LOOM_RETURN_IF_ERROR(context_->Synchronize());
    return inner_->Broadcast(tensor, root);
  }
  absl::Status Scatter(absl::Span<const Tensor> parts, Tensor& out, int64_t root) override {
    LOOM_RETURN_IF_ERROR(context_->Synchronize());
    return inner_->Scatter(parts, out, root);
  }
  absl::Status Barrier() override { return inner_->Barrier(); }

 private:
  std::unique_ptr<Communicator> inner_;
  kernels::ExecutionContext* context_;
};

}  // namespace loom

#endif  // LOOM_WORKER_COMM_DEVICE_ORDERED_COMMUNICATOR_H_
