#include "controller/generate_reactor.h"

#include "controller/loom_service.h"

namespace loom {

GenerateReactor::GenerateReactor(std::vector<std::shared_ptr<RequestStream>> streams)
    : streams_(std::move(streams)) {
  {
    absl::MutexLock lock(&mu_);
    done_.assign(streams_.size(), false);
    remaining_ = streams_.size();
  }
  for (const std::shared_ptr<RequestStream>& stream : streams_) {
    stream->SetListener([this] {
      absl::MutexLock lock(&mu_);
      WriteNext();
    });
  }
  absl::MutexLock lock(&mu_);
  WriteNext();  // what arrived before the listeners were set
}

GenerateReactor::GenerateReactor(const grpc::Status& status) {
  absl::MutexLock lock(&mu_);
  FinishOnce(status);
}

void GenerateReactor::CancelAll() {
  for (const std::shared_ptr<RequestStream>& stream : streams_) stream->Cancel();
}

void GenerateReactor::WriteNext() {
  if (writing_ || finished_) return;
  if (remaining_ == 0) {
    FinishOnce(grpc::Status::OK);
    return;
  }
  // The first choice from next_choice_ on with something new, so no choice starves the others.
  GenerateDelta delta;
  size_t choice = streams_.size();
  for (size_t i = 0; i < streams_.size(); ++i) {
    const size_t k = (next_choice_ + i) % streams_.size();
    if (!done_[k] && streams_[k]->Next(&delta, std::chrono::milliseconds(0))) {
      choice = k;
      break;
    }
  }
  if (choice == streams_.size()) return;
  next_choice_ = choice + 1;
  if (!delta.error.ok()) {
    CancelAll();
    FinishOnce(ToGrpcStatus(delta.error));
    return;
  }
  response_.Clear();
  response_.set_index(static_cast<int32_t>(choice));
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
    done_[choice] = true;
    --remaining_;
  }
  writing_ = true;
  StartWrite(&response_);
}

void GenerateReactor::FinishOnce(const grpc::Status& status) {
  if (finished_) return;
  finished_ = true;
  Finish(status);
}

void GenerateReactor::OnWriteDone(bool ok) {
  if (!ok) CancelAll();  // the client is gone; the engine drops the sequences
  absl::MutexLock lock(&mu_);
  writing_ = false;
  if (!ok || cancelled_) {
    FinishOnce(grpc::Status(grpc::StatusCode::CANCELLED, "the client went away"));
  } else {
    WriteNext();  // the next message, or the end after every choice's last
  }
}

void GenerateReactor::OnCancel() {
  CancelAll();
  absl::MutexLock lock(&mu_);
  cancelled_ = true;
  // With a write in flight, its OnWriteDone finishes the call.
  if (!writing_) FinishOnce(grpc::Status(grpc::StatusCode::CANCELLED, "the client went away"));
}

void GenerateReactor::OnDone() {
  // Once SetListener returns no listener call is running or will run, so the reactor can go.
  for (const std::shared_ptr<RequestStream>& stream : streams_) stream->SetListener(nullptr);
  delete this;
}

}  // namespace loom
