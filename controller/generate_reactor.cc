#include "controller/generate_reactor.h"

#include "controller/loom_service.h"

namespace loom {

GenerateReactor::GenerateReactor(std::shared_ptr<RequestStream> stream)
    : stream_(std::move(stream)) {
  stream_->SetListener([this] {
    absl::MutexLock lock(&mu_);
    WriteNext();
  });
  absl::MutexLock lock(&mu_);
  WriteNext();  // what arrived before the listener was set
}

GenerateReactor::GenerateReactor(const grpc::Status& status) {
  absl::MutexLock lock(&mu_);
  FinishOnce(status);
}

void GenerateReactor::WriteNext() {
  if (writing_ || finished_) return;
  GenerateDelta delta;
  if (!stream_->Next(&delta, std::chrono::milliseconds(0))) return;
  if (!delta.error.ok()) {
    FinishOnce(ToGrpcStatus(delta.error));
    return;
  }
  response_.Clear();
  response_.mutable_token_ids()->Add(delta.token_ids.begin(), delta.token_ids.end());
  response_.set_text(delta.text);
  response_.set_weight_version(delta.weight_version);
  for (const TokenLogprobs& l : delta.logprobs) {
    loom::v1::TokenLogprob* out = response_.add_logprobs();
    out->set_logprob(l.logprob);
    out->mutable_top_ids()->Add(l.top_ids.begin(), l.top_ids.end());
    out->mutable_top_logprobs()->Add(l.top_logprobs.begin(), l.top_logprobs.end());
  }
  if (delta.done) {
    response_.set_finish_reason(FinishReasonName(delta.finish_reason));
    response_.mutable_usage()->set_prompt_tokens(static_cast<int32_t>(delta.prompt_tokens));
    response_.mutable_usage()->set_completion_tokens(
        static_cast<int32_t>(delta.completion_tokens));
  }
  writing_ = true;
  last_written_ = delta.done;
  StartWrite(&response_);
}

void GenerateReactor::FinishOnce(const grpc::Status& status) {
  if (finished_) return;
  finished_ = true;
  Finish(status);
}

void GenerateReactor::OnWriteDone(bool ok) {
  if (!ok) stream_->Cancel();  // the client is gone; the engine drops the sequence
  absl::MutexLock lock(&mu_);
  writing_ = false;
  if (!ok || cancelled_) {
    FinishOnce(grpc::Status(grpc::StatusCode::CANCELLED, "the client went away"));
  } else if (last_written_) {
    FinishOnce(grpc::Status::OK);
  } else {
    WriteNext();
  }
}

void GenerateReactor::OnCancel() {
  if (stream_ != nullptr) stream_->Cancel();
  absl::MutexLock lock(&mu_);
  cancelled_ = true;
  // With a write in flight, its OnWriteDone finishes the call.
  if (!writing_) FinishOnce(grpc::Status(grpc::StatusCode::CANCELLED, "the client went away"));
}

void GenerateReactor::OnDone() {
  // Once SetListener returns no listener call is running or will run, so the reactor can go.
  if (stream_ != nullptr) stream_->SetListener(nullptr);
  delete this;
}

}  // namespace loom
