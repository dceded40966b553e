// The Worker gRPC service: a Rank (rank.h) on the wire of the controller protocol
// (proto/loom/v1/worker.proto). Init, Call and the step stream convert their messages and hand
// them to the rank; Health and Shutdown do what they say. A step's error travels in
// StepResponse.error so the stream stays open.
//
// Thread-safe: gRPC calls arrive on many threads (the Rank serialises what must be).
#ifndef LOOM_WORKER_WORKER_SERVICE_H_
#define LOOM_WORKER_WORKER_SERVICE_H_

#include <memory>
#include <string>

#include "loom/v1/worker.grpc.pb.h"
#include "worker/rank.h"

namespace loom {

// The service adds nothing to what its rank is told.
using WorkerServiceOptions = RankOptions;

class WorkerService final : public loom::v1::Worker::Service {
 public:
  // With a `cluster_secret`, every call must carry it (proto/cluster_channel.h): others get
  // UNAUTHENTICATED before their request is looked at.
  explicit WorkerService(const WorkerServiceOptions& options, std::string cluster_secret = "")
      : rank_(options), cluster_secret_(std::move(cluster_secret)) {}

  // The controller this worker registered with: its store is where the Gloo ranks meet.
  // Must be called before Init can succeed at world size > 1.
  void SetController(std::shared_ptr<loom::v1::Controller::StubInterface> controller,
                     const std::string& session_id);

  // Notified once the controller asked this worker to stop (or the process is stopping).
  const absl::Notification& stopping() const { return rank_.stopping(); }
  void RequestStop() { rank_.RequestStop(); }

  grpc::Status Init(grpc::ServerContext* context, const loom::v1::InitRequest* request,
                    loom::v1::InitResponse* response) override;
  grpc::Status Call(grpc::ServerContext* context, const loom::v1::CallRequest* request,
                    loom::v1::CallResponse* response) override;
  grpc::Status Steps(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<loom::v1::StepResponse, loom::v1::StepRequest>* stream) override;
  grpc::Status Health(grpc::ServerContext* context, const loom::v1::HealthRequest* request,
                      loom::v1::HealthResponse* response) override;
  grpc::Status Shutdown(grpc::ServerContext* context,
                        const loom::v1::WorkerShutdownRequest* request,
                        loom::v1::WorkerShutdownResponse* response) override;

 private:
  Rank rank_;
  const std::string cluster_secret_;
};

}  // namespace loom

#endif  // LOOM_WORKER_WORKER_SERVICE_H_
