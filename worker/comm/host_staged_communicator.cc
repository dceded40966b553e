#include "worker/comm/host_staged_communicator.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "worker/comm/collective_args.h"

namespace loom {

absl::StatusOr<Tensor> HostStagedCommunicator::ToDevice(const Tensor& host, bool copy) {
  if (!host.device().is_cpu()) return host;
  if (!host.is_contiguous()) {
    return absl::InvalidArgumentError(
        absl::StrCat("collective on a non-contiguous tensor ", host.DebugString()));
  }
  LOOM_ASSIGN_OR_RETURN(Tensor device, context_->Allocate(host.dtype(), host.shape()));
  if (copy) {
    LOOM_RETURN_IF_ERROR(context_->Upload(host, device));
    // The collective runs on the communicator's own stream: the copy must have landed.
    LOOM_RETURN_IF_ERROR(context_->Synchronize());
  }
  return device;
}

absl::Status HostStagedCommunicator::ToHost(const Tensor& device, const Tensor& host) {
  if (device.raw_data() == host.raw_data()) return absl::OkStatus();
  return context_->Download(device, host);
}

absl::Status HostStagedCommunicator::AllReduceSum(Tensor& tensor) {
  LOOM_ASSIGN_OR_RETURN(Tensor d, ToDevice(tensor, true));
  LOOM_RETURN_IF_ERROR(inner_->AllReduceSum(d));
  return ToHost(d, tensor);
}

absl::Status HostStagedCommunicator::AllGatherLastDim(const Tensor& in, Tensor& out) {
  LOOM_ASSIGN_OR_RETURN(Tensor din, ToDevice(in, true));
  LOOM_ASSIGN_OR_RETURN(Tensor dout, ToDevice(out, false));
  LOOM_RETURN_IF_ERROR(inner_->AllGatherLastDim(din, dout));
  return ToHost(dout, out);
}

absl::Status HostStagedCommunicator::AllGather(const Tensor& in, Tensor& out) {
  LOOM_ASSIGN_OR_RETURN(Tensor din, ToDevice(in, true));
  LOOM_ASSIGN_OR_RETURN(Tensor dout, ToDevice(out, false));
  LOOM_RETURN_IF_ERROR(inner_->AllGather(din, dout));
  return ToHost(dout, out);
}

absl::Status HostStagedCommunicator::Broadcast(Tensor& tensor, int64_t root) {
  // Only the root's bytes matter; the others' arrive.
  LOOM_ASSIGN_OR_RETURN(Tensor d, ToDevice(tensor, inner_->rank() == root));
  LOOM_RETURN_IF_ERROR(inner_->Broadcast(d, root));
  return ToHost(d, tensor);
}

absl::Status HostStagedCommunicator::Scatter(absl::Span<const Tensor> parts, Tensor& out,
                                             int64_t root) {
  LOOM_RETURN_IF_ERROR(CheckScatterArgs(parts, out, root, rank(), world_size()));
  const bool is_root = rank() == root;
  // A root whose out is its own part already holds its bytes: that part gets a device buffer
  // (the inner call's out) but no upload and no download.
  const bool own_in_place = is_root && out.raw_data() == parts[root].raw_data();
  std::vector<Tensor> device_parts;
  for (size_t r = 0; is_root && r < parts.size(); ++r) {
    const bool upload = !(own_in_place && static_cast<int64_t>(r) == root);
    LOOM_ASSIGN_OR_RETURN(Tensor d, ToDevice(parts[r], upload));
    device_parts.push_back(std::move(d));
  }
  // A host out on the root takes its part's device copy (the checks made it out's shape and
  // dtype), so the inner call copies nothing.
  Tensor d;
  if (is_root && out.device().is_cpu()) {
    d = device_parts[root];
  } else {
    LOOM_ASSIGN_OR_RETURN(d, ToDevice(out, false));
  }
  LOOM_RETURN_IF_ERROR(inner_->Scatter(device_parts, d, root));
  return own_in_place ? absl::OkStatus() : ToHost(d, out);
}

}  // namespace loom
