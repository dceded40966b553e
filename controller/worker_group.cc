#include "controller/worker_group.h"

#include <algorithm>
#include <optional>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/engine_config_json.h"
#include "proto/cluster_channel.h"
#include "proto/grpc_status.h"

namespace loom {
namespace {

loom::v1::StepRequest ToProto(const StepInput& input, uint64_t step_id) {
  loom::v1::StepRequest request;
  request.set_step_id(step_id);
  request.set_weight_version(input.weight_version);
  request.set_return_logits(input.return_logits);
  for (const SequenceStep& s : input.sequences) {
    loom::v1::SequenceStep* p = request.add_sequences();
    p->set_seq_id(s.seq_id);
    p->mutable_token_ids()->Add(s.token_ids.begin(), s.token_ids.end());
    p->set_start_position(s.start_position);
    p->mutable_block_table()->Add(s.block_table.begin(), s.block_table.end());
    p->set_sample(s.sample);
    p->mutable_sampling()->set_temperature(s.sampling.temperature);
    p->mutable_sampling()->set_top_k(s.sampling.top_k);
    p->mutable_sampling()->set_top_p(s.sampling.top_p);
    p->mutable_sampling()->set_seed(s.sampling.seed);
    p->mutable_sampling()->set_logprobs(s.sampling.logprobs + 1);
    p->mutable_sampling()->set_presence_penalty(s.sampling.presence_penalty);
    p->mutable_sampling()->set_frequency_penalty(s.sampling.frequency_penalty);
    p->mutable_sampling()->set_repetition_penalty(s.sampling.repetition_penalty);
    p->set_sample_index(s.sample_index);
    p->mutable_penalty_ids()->Add(s.penalty_ids.begin(), s.penalty_ids.end());
    p->mutable_penalty_output_counts()->Add(s.penalty_output_counts.begin(),
                                            s.penalty_output_counts.end());
  }
  return request;
}

// After the first sign of trouble in a step, how long the other ranks get to report theirs, so
// the error names the rank that died rather than the ranks whose collectives broke with it.
constexpr absl::Duration kFailureGrace = absl::Milliseconds(300);

}  // namespace

absl::StatusOr<std::unique_ptr<WorkerGroup>> WorkerGroup::Connect(
    const WorkerGroupOptions& options) {
  if (options.addresses.empty()) return absl::InvalidArgumentError("a group needs ranks");
  std::unique_ptr<WorkerGroup> group(new WorkerGroup(options));
  const int n = static_cast<int>(options.addresses.size());
  group->ranks_.resize(n);
  {
    absl::MutexLock lock(&group->mu_);
    group->inboxes_.resize(n);
  }
  for (int r = 0; r < n; ++r) {
    Rank& rank = group->ranks_[r];
    rank.channel = ClusterChannel(options.addresses[r], options.cluster_secret);
    rank.stub = loom::v1::Worker::NewStub(rank.channel);
    rank.stream_context = std::make_unique<grpc::ClientContext>();
    rank.stream = rank.stub->Steps(rank.stream_context.get());
  }
  for (int r = 0; r < n; ++r) {
    group->ranks_[r].reader = std::thread([g = group.get(), r] { g->ReadResponses(r); });
  }
  return group;
}

WorkerGroup::~WorkerGroup() {
  absl::MutexLock step_lock(&step_mu_);
  for (Rank& rank : ranks_) {
    if (rank.stream_context != nullptr) rank.stream_context->TryCancel();
  }
  for (Rank& rank : ranks_) {
    if (rank.reader.joinable()) rank.reader.join();
    if (rank.stream != nullptr) rank.stream->Finish().ok();  // cancelled: the status is moot
  }
}

void WorkerGroup::ReadResponses(int rank) {
  loom::v1::StepResponse response;
  while (ranks_[rank].stream->Read(&response)) {
    absl::MutexLock lock(&mu_);
    inboxes_[rank].responses.push_back(std::move(response));
    changed_.SignalAll();
    response = loom::v1::StepResponse();
  }
  absl::MutexLock lock(&mu_);
  inboxes_[rank].closed = true;
  changed_.SignalAll();
}

absl::Status WorkerGroup::broken() const {
  absl::MutexLock lock(&mu_);
  return broken_;
}

double WorkerGroup::last_step_compute_seconds() const {
  absl::MutexLock lock(&mu_);
  return last_compute_seconds_;
}

std::string WorkerGroup::DeadRankReason(int rank) const {
  if (!options_.rank_status) return "";
  absl::Status s = options_.rank_status(rank);
  return s.ok() ? "" : std::string(s.message());
}

absl::StatusOr<GroupInitResult> WorkerGroup::Init(const EngineConfig& config, int num_threads,
                                                  uint64_t weight_version) {
  absl::MutexLock init_lock(&init_mu_);
  const int n = world_size();
  loom::v1::InitRequest request;
  request.set_engine_config_json(EngineConfigToJson(config));
  // Empty: each rank uses its device's own (Gloo on the host, NCCL on GPUs).
  request.set_num_threads(num_threads);
  request.set_weight_version(weight_version);
  request.set_store_prefix(absl::StrCat("gloo/init", init_generation_++));

  struct Pending {
    grpc::ClientContext context;
    loom::v1::InitResponse response;
    grpc::Status status;
    std::unique_ptr<grpc::ClientAsyncResponseReader<loom::v1::InitResponse>> rpc;
  };
  std::vector<Pending> pending(n);
  grpc::CompletionQueue cq;
  const auto deadline = std::chrono::system_clock::now() + options_.init_timeout;
  for (int r = 0; r < n; ++r) {
    pending[r].context.set_deadline(deadline);
    pending[r].rpc = ranks_[r].stub->PrepareAsyncInit(&pending[r].context, request, &cq);
    pending[r].rpc->StartCall();
    pending[r].rpc->Finish(&pending[r].response, &pending[r].status,
                           reinterpret_cast<void*>(static_cast<intptr_t>(r)));
  }
  // The ranks wait for each other in the rendezvous: once one fails, the rest would only wait
  // for their timeout, so they are cancelled.
  // They get a moment first to report their own errors, which are usually the same one (a
  // model directory no rank can read), so the error names every failing rank.
  std::vector<int> failed;
  std::optional<std::chrono::system_clock::time_point> cancel_at;
  bool cancelled = false;
  for (int done = 0; done < n;) {
    void* tag = nullptr;
    bool ok = false;
    const auto wait_until = cancel_at.has_value() && !cancelled
                                ? *cancel_at
                                : std::chrono::system_clock::time_point::max();
    const grpc::CompletionQueue::NextStatus next = cq.AsyncNext(&tag, &ok, wait_until);
    if (next == grpc::CompletionQueue::SHUTDOWN) break;
    if (next == grpc::CompletionQueue::TIMEOUT) {
      for (Pending& p : pending) p.context.TryCancel();
      cancelled = true;
      continue;
    }
    ++done;
    const int r = static_cast<int>(reinterpret_cast<intptr_t>(tag));
    if (!pending[r].status.ok() && pending[r].status.error_code() != grpc::StatusCode::CANCELLED) {
      if (!cancel_at.has_value()) {
        cancel_at = std::chrono::system_clock::now() + absl::ToChronoMilliseconds(kFailureGrace);
      }
      failed.push_back(r);
    }
  }
  cq.Shutdown();
  if (!failed.empty()) {
    std::sort(failed.begin(), failed.end());
    std::vector<std::string> messages;
    for (int r : failed) {
      messages.push_back(absl::StrCat("rank ", r, ": ", pending[r].status.error_message()));
    }
    return absl::Status(FromGrpcStatus(pending[failed[0]].status).code(),
                        absl::StrCat("Init failed: ", absl::StrJoin(messages, "; ")));
  }
  GroupInitResult result;
  result.num_kv_blocks = pending[0].response.num_kv_blocks();
  for (int r = 0; r < n; ++r) {
    if (!pending[r].status.ok()) {  // cancelled without a failure: cannot happen, but be exact
      return absl::InternalError(
          absl::StrCat("Init: rank ", r, ": ", pending[r].status.error_message()));
    }
    result.num_kv_blocks = std::min(result.num_kv_blocks, pending[r].response.num_kv_blocks());
    result.describe.push_back(nlohmann::json::parse(pending[r].response.describe_json(), nullptr,
                                                    /*allow_exceptions=*/false));
  }
  return result;
}

absl::StatusOr<std::vector<RankResult>> WorkerGroup::CollectiveCall(
    const std::string& method, const std::string& args_json, std::chrono::milliseconds timeout,
    const std::vector<int>& ranks) {
  if (timeout.count() <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("method ", method, ": a collective call needs a positive deadline"));
  }
  std::vector<int> targets = ranks;
  if (targets.empty()) {
    for (int r = 0; r < world_size(); ++r) targets.push_back(r);
  }
  std::set<int> seen;
  for (int r : targets) {
    if (r < 0 || r >= world_size() || !seen.insert(r).second) {
      return absl::InvalidArgumentError(absl::StrCat(
          "method ", method, ": rank ", r, " is not in [0, ", world_size(), ") or is named twice"));
    }
  }
  loom::v1::CallRequest request;
  request.set_method(method);
  request.set_args_json(args_json);
  struct Pending {
    grpc::ClientContext context;
    loom::v1::CallResponse response;
    grpc::Status status;
    std::unique_ptr<grpc::ClientAsyncResponseReader<loom::v1::CallResponse>> rpc;
  };
  std::vector<Pending> pending(targets.size());
  grpc::CompletionQueue cq;
  const auto deadline = std::chrono::system_clock::now() + timeout;
  for (size_t i = 0; i < targets.size(); ++i) {
    pending[i].context.set_deadline(deadline);
    pending[i].rpc = ranks_[targets[i]].stub->PrepareAsyncCall(&pending[i].context, request, &cq);
    pending[i].rpc->StartCall();
    pending[i].rpc->Finish(&pending[i].response, &pending[i].status, reinterpret_cast<void*>(i));
  }
  for (size_t done = 0; done < targets.size(); ++done) {
    void* tag = nullptr;
    bool ok = false;
    if (!cq.Next(&tag, &ok)) break;
  }
  cq.Shutdown();

  std::vector<RankResult> results;
  std::vector<std::string> failures;
  std::vector<std::string> aborted;
  std::vector<int> late;
  absl::StatusCode code = absl::StatusCode::kOk;
  for (size_t i = 0; i < targets.size(); ++i) {
    const int r = targets[i];
    const grpc::Status& s = pending[i].status;
    if (s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
      late.push_back(r);
    } else if (s.error_code() == grpc::StatusCode::ABORTED) {
      // A rank that stopped because another failed: the cause is named first.
      aborted.push_back(absl::StrCat("rank ", r, ": ", s.error_message()));
    } else if (!s.ok()) {
      if (code == absl::StatusCode::kOk) code = FromGrpcStatus(s).code();
      std::string message = s.error_message();
      if (std::string dead = DeadRankReason(r); !dead.empty()) message = dead;
      failures.push_back(absl::StrCat("rank ", r, ": ", message));
    } else {
      nlohmann::json result = pending[i].response.result_json().empty()
                                  ? nlohmann::json()
                                  : nlohmann::json::parse(pending[i].response.result_json(),
                                                          nullptr, /*allow_exceptions=*/false);
      if (result.is_discarded()) {
        if (code == absl::StatusCode::kOk) code = absl::StatusCode::kInternal;
        failures.push_back(absl::StrCat("rank ", r, ": returned invalid JSON"));
      }
      results.push_back({r, std::move(result)});
    }
  }
  if (failures.empty() && aborted.empty() && late.empty()) return results;
  if (code == absl::StatusCode::kOk && !aborted.empty()) code = absl::StatusCode::kAborted;
  failures.insert(failures.end(), aborted.begin(), aborted.end());
  if (!late.empty()) {
    failures.push_back(absl::StrCat("rank", late.size() > 1 ? "s " : " ", absl::StrJoin(late, ", "),
                                    " did not answer within ", timeout.count(), " ms"));
    if (code == absl::StatusCode::kOk) code = absl::StatusCode::kDeadlineExceeded;
  }
  return absl::Status(code,
                      absl::StrCat("method ", method, " failed: ", absl::StrJoin(failures, "; ")));
}

absl::Status WorkerGroup::StepFailure(
    const std::vector<int>& closed, const std::vector<int>& late,
    const std::vector<std::optional<loom::v1::StepResponse>>& responses, uint64_t step_id) {
  // A closed stream usually means a dead process, and the supervisor's reaper may be a moment
  // behind the socket: give it that moment, so the error names how the rank ended.
  const absl::Time settle = absl::Now() + kFailureGrace;
  std::vector<std::string> dead(world_size());
  while (true) {
    bool unexplained = false;
    for (int r = 0; r < world_size(); ++r) {
      dead[r] = DeadRankReason(r);
      const bool was_closed = std::find(closed.begin(), closed.end(), r) != closed.end();
      unexplained = unexplained || (was_closed && dead[r].empty());
    }
    if (!unexplained || !options_.rank_status || absl::Now() > settle) break;
    absl::SleepFor(absl::Milliseconds(5));
  }
  // Dead ranks first: they are the cause; the others' collectives broke because of them.
  std::vector<std::string> reasons, consequences;
  bool unavailable = false;
  for (int r = 0; r < world_size(); ++r) {
    const bool was_closed = std::find(closed.begin(), closed.end(), r) != closed.end();
    if (!dead[r].empty()) {
      reasons.push_back(dead[r]);
      unavailable = true;
    } else if (was_closed) {
      reasons.push_back(absl::StrCat("rank ", r, ": its step stream closed"));
      unavailable = true;
    } else if (responses[r].has_value() && !responses[r]->error().empty()) {
      consequences.push_back(absl::StrCat("rank ", r, ": ", responses[r]->error()));
      unavailable = true;
    }
  }
  reasons.insert(reasons.end(), consequences.begin(), consequences.end());
  if (!late.empty()) {
    reasons.push_back(absl::StrCat(
        "rank", late.size() > 1 ? "s " : " ", absl::StrJoin(late, ", "),
        unavailable
            ? " did not answer"
            : absl::StrCat(" did not answer within ", options_.step_timeout.count(), " ms")));
  }
  const std::string message =
      absl::StrCat("step ", step_id, " failed: ", absl::StrJoin(reasons, "; "));
  const absl::Status status =
      unavailable ? absl::UnavailableError(message) : absl::DeadlineExceededError(message);
  absl::MutexLock lock(&mu_);
  if (broken_.ok()) broken_ = status;
  return status;
}

absl::StatusOr<StepOutput> WorkerGroup::Step(const StepInput& step) {
  absl::MutexLock step_lock(&step_mu_);
  if (absl::Status b = broken(); !b.ok()) return b;
  const int n = world_size();
  const uint64_t step_id = ++next_step_id_;
  const loom::v1::StepRequest request = ToProto(step, step_id);
  std::vector<int> closed;
  for (int r = 0; r < n; ++r) {
    if (!ranks_[r].stream->Write(request)) closed.push_back(r);
  }

  // Gather one response per rank. Responses of earlier, abandoned steps cannot be queued: a step
  // that is not answered in full breaks the group.
  std::vector<std::optional<loom::v1::StepResponse>> responses(n);
  const absl::Time deadline = absl::Now() + absl::FromChrono(options_.step_timeout);
  std::optional<absl::Time> trouble_since;
  std::vector<int> late;
  {
    absl::MutexLock lock(&mu_);
    while (true) {
      int answered = 0;
      bool trouble = !closed.empty();
      for (int r = 0; r < n; ++r) {
        Inbox& inbox = inboxes_[r];
        if (!responses[r].has_value() && !inbox.responses.empty()) {
          responses[r] = std::move(inbox.responses.front());
          inbox.responses.pop_front();
        }
        if (responses[r].has_value()) {
          ++answered;
          trouble = trouble || !responses[r]->error().empty();
        } else if (inbox.closed) {
          trouble = true;
          if (std::find(closed.begin(), closed.end(), r) == closed.end()) closed.push_back(r);
        }
      }
      if (answered + static_cast<int>(closed.size()) >= n) break;
      const absl::Time now = absl::Now();
      if (trouble && !trouble_since.has_value()) trouble_since = now;
      if (trouble_since.has_value() && now - *trouble_since > kFailureGrace) break;
      if (now > deadline) break;
      // Short slices: a rank whose process died is noticed through rank_status too.
      changed_.WaitWithTimeout(&mu_, absl::Milliseconds(50));
      if (options_.rank_status && !trouble_since.has_value()) {
        mu_.Unlock();
        bool dead = false;
        for (int r = 0; r < n && !dead; ++r) dead = !DeadRankReason(r).empty();
        mu_.Lock();
        if (dead) trouble_since = absl::Now();
      }
    }
    for (int r = 0; r < n; ++r) {
      const bool was_closed = std::find(closed.begin(), closed.end(), r) != closed.end();
      if (!responses[r].has_value() && !was_closed) late.push_back(r);
    }
  }
  bool any_dead = !closed.empty();
  for (int r = 0; r < n && !any_dead; ++r) any_dead = !DeadRankReason(r).empty();
  if (any_dead || !late.empty()) return StepFailure(closed, late, responses, step_id);

  // Every rank answered. Errors the ranks reported leave the streams in step.
  for (int r = 0; r < n; ++r) {
    const loom::v1::StepResponse& resp = *responses[r];
    if (!resp.error().empty()) {
      std::vector<int> also;
      for (int o = r + 1; o < n; ++o) {
        if (!responses[o]->error().empty()) also.push_back(o);
      }
      const absl::StatusCode code = resp.error_code() != 0
                                        ? static_cast<absl::StatusCode>(resp.error_code())
                                        : absl::StatusCode::kInternal;
      return absl::Status(code, absl::StrCat("step ", step_id, " failed on rank ", r, ": ",
                                             resp.error(), also.empty() ? "" : " (and on ranks ",
                                             absl::StrJoin(also, ", "), also.empty() ? "" : ")"));
    }
  }
  StepOutput out;
  const loom::v1::StepResponse& lead = *responses[0];
  out.seq_ids.assign(lead.seq_ids().begin(), lead.seq_ids().end());
  out.tokens.assign(lead.tokens().begin(), lead.tokens().end());
  if (lead.logits_size() > 0 && !out.tokens.empty() &&
      lead.logits_size() % static_cast<int>(out.tokens.size()) == 0) {
    const int64_t rows = static_cast<int64_t>(out.tokens.size());
    out.logits = Tensor::Empty(DType::kF32, {rows, lead.logits_size() / rows});
    std::copy(lead.logits().begin(), lead.logits().end(), out.logits.data<float>());
  }
  for (const loom::v1::StepLogprobs& l : lead.logprobs()) {
    TokenLogprobs& t = out.logprobs.emplace_back();
    t.present = l.present();
    t.logprob = l.logprob();
    t.top_ids.assign(l.top_ids().begin(), l.top_ids().end());
    t.top_logprobs.assign(l.top_logprobs().begin(), l.top_logprobs().end());
  }
  double slowest = 0;
  for (const auto& r : responses) slowest = std::max(slowest, r->compute_seconds());
  absl::MutexLock lock(&mu_);
  last_compute_seconds_ = slowest;
  return out;
}

}  // namespace loom
