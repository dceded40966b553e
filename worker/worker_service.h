// The Worker gRPC service: one tensor-parallel rank's side of the controller protocol
// (proto/loom/v1/worker.proto). Init joins the Gloo group through the controller's store and
// loads this rank's shard; Call runs a registered method; Steps runs the forward pass of every
// step the controller sends on one long-lived stream; Health and Shutdown do what they say.
//
// Bad input never crashes the worker and never changes its state: malformed JSON, unknown
// methods, out-of-range tokens or blocks come back as errors (a step's error travels in
// StepResponse.error so the stream stays open). Messages do not name the rank: the controller
// adds "rank R: " when it reports them.
//
// Thread-safe: gRPC calls arrive on many threads. Init runs once; steps are serialised (there is
// one model and one KV cache); method calls run concurrently with steps and each other.
#ifndef LOOM_WORKER_WORKER_SERVICE_H_
#define LOOM_WORKER_WORKER_SERVICE_H_

#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "common/engine_config.h"
#include "loom/v1/worker.grpc.pb.h"
#include "worker/comm/communicator.h"
#include "worker/method_registry.h"
#include "worker/model_runner.h"
#include "worker/weight_manager.h"
#include "worker/weight_methods.h"

namespace loom {

struct WorkerServiceOptions {
  int rank = 0;
  int world_size = 1;
  std::string device = "cpu";
  int num_threads = 1;  // kernel threads unless InitRequest.num_threads says otherwise
  bool enable_test_methods = false;
  std::string hostname = "127.0.0.1";  // the address Gloo listens on and announces to peers
  // Bounds the Gloo rendezvous and every collective.
  std::chrono::milliseconds collective_timeout = std::chrono::seconds(60);
};

class WorkerService final : public loom::v1::Worker::Service {
 public:
  explicit WorkerService(const WorkerServiceOptions& options);
  ~WorkerService() override;

  // The controller this worker registered with: its store is where the Gloo ranks meet.
  // Must be called before Init can succeed at world size > 1.
  void SetController(std::shared_ptr<loom::v1::Controller::StubInterface> controller,
                     const std::string& session_id);

  // Notified once the controller asked this worker to stop (or the process is stopping).
  const absl::Notification& stopping() const { return stopping_; }
  void RequestStop();

  // `describe` as JSON: who this rank is and what it holds.
  nlohmann::json Describe() const;

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
  enum class State { kStarting, kInitializing, kReady, kFailed };
  static const char* StateName(State state);

  absl::Status DoInit(const loom::v1::InitRequest& request, int64_t* num_kv_blocks);
  // One step: the proto checked against the model and cache, then run.
  absl::Status RunStep(const loom::v1::StepRequest& request, loom::v1::StepResponse& response);

  const WorkerServiceOptions options_;
  MethodRegistry methods_;
  absl::Notification stopping_;
  std::once_flag stop_once_;

  mutable absl::Mutex mu_;
  State state_ ABSL_GUARDED_BY(mu_) = State::kStarting;
  std::string error_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<loom::v1::Controller::StubInterface> controller_ ABSL_GUARDED_BY(mu_);
  std::string session_id_ ABSL_GUARDED_BY(mu_);
  EngineConfig config_ ABSL_GUARDED_BY(mu_);
  nlohmann::json model_info_ ABSL_GUARDED_BY(mu_);  // describe's model fields, set by Init

  // Set once by Init (under step_mu_ and mu_) and never replaced; steps hold step_mu_ to use
  // them, describe holds mu_.
  absl::Mutex step_mu_;
  std::unique_ptr<Communicator> comm_;
  // Weight traffic (broadcast loads, agreement) runs on its own group, beside the steps'.
  std::unique_ptr<Communicator> weight_comm_;
  std::unique_ptr<ModelRunner> runner_;
  std::unique_ptr<WeightManager> weights_;
  std::unique_ptr<WeightMethods> weight_methods_ ABSL_GUARDED_BY(mu_);
};

}  // namespace loom

#endif  // LOOM_WORKER_WORKER_SERVICE_H_
