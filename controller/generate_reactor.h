// GenerateReactor: one Generate call of the Loom API served with gRPC's callback API, so the
// server is told — not left to poll — when the client goes away.
//
// It writes the deltas of a request's RequestStreams — one per choice, GenerateRequest.n — as
// they arrive, each message naming its choice (one write in flight; what a choice gets meanwhile
// is merged into its next message; choices take turns). The call ends after every choice's last
// message, or at the first choice that fails, which cancels the others. gRPC's OnCancel fires on a client cancel, a disconnect and a passed
// deadline alike; the reactor then cancels the RequestStreams, which wakes the engine so the
// sequence is aborted before the next step. A failed write is treated the same way.
//
// Thread-safe: gRPC threads and the engine thread (through the stream's listener) both drive
// it. It deletes itself when gRPC is done with the call.
#ifndef LOOM_CONTROLLER_GENERATE_REACTOR_H_
#define LOOM_CONTROLLER_GENERATE_REACTOR_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "controller/serving_engine.h"
#include "loom/v1/loom.grpc.pb.h"

namespace loom {

class GenerateReactor final : public grpc::ServerWriteReactor<loom::v1::GenerateResponse> {
 public:
  // Streams `streams` (choice k is streams[k]) to the client until their last deltas, an
  // error, or the client leaves.
  explicit GenerateReactor(std::vector<std::shared_ptr<RequestStream>> streams);
  // A call that failed before it started: finishes at once with `status`.
  explicit GenerateReactor(const grpc::Status& status);

  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  // Starts the next write when none is in flight and a delta is ready; finishes the call after
  // the last one.
  void WriteNext() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FinishOnce(const grpc::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void CancelAll();

  const std::vector<std::shared_ptr<RequestStream>> streams_;
  absl::Mutex mu_;
  loom::v1::GenerateResponse response_ ABSL_GUARDED_BY(mu_);  // alive until its write is done
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<bool> done_ ABSL_GUARDED_BY(mu_);  // per choice: its last delta is written
  size_t next_choice_ ABSL_GUARDED_BY(mu_) = 0;  // where the next turn starts
  size_t remaining_ ABSL_GUARDED_BY(mu_) = 0;    // choices whose last delta is not written
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace loom

#endif  // LOOM_CONTROLLER_GENERATE_REACTOR_H_
