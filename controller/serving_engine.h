// ServingEngine: the controller's whole serving side in one object — the Executor whose ranks
// run the steps (worker processes, or a rank in this process: executor.h), the Scheduler with
// its BlockManager, and the ServedModel (tokenizer, eos ids, generation defaults,
// max_model_len) — with one engine thread that runs the step loop (DESIGN.md §1, §3.12). The
// server, `loom generate`, `loom bench` and the reference tests all run this one loop.
//
// Requests enter with Submit and leave through their RequestStream: token ids and text deltas
// as they are sampled, then one last message with the finish reason and usage. The engine
// thread admits new requests between steps (continuous batching), runs a step on every rank,
// routes rank 0's sampled tokens to their streams through a per-request incremental
// detokenizer, and ends the requests the scheduler reports finished.
//
// A dead rank: the step in flight fails with UNAVAILABLE naming the rank (the executor knows
// it), and so does every request in flight; an idle engine notices a dead
// rank within kHealthPollInterval. Then the engine heals (RecoveryOptions): every rank is
// restarted and loads the serving load config as a new version; requests in flight are
// recomputed (or fail, by option), requests arriving meanwhile wait, and the prefix cache is
// emptied. Past the restart budget — or with an executor that cannot restart its ranks — the
// engine is broken: Submit fails with the error, Status shows the failed rank and why no restart
// followed, and collective calls still reach the live ranks.
//
// A client that goes away (RequestStream::Cancel: a cancel, a disconnect or a passed deadline,
// as the API layer learns of it) wakes the engine thread, which aborts its sequence before the
// next step: a step already running when the cancel arrives completes, no later step includes
// the sequence, and its KV blocks are free as soon as that step ends. It counts as finished
// with reason "abort"; its output is dropped.
//
// A commit or reload that puts another model directory into service switches the ServedModel
// with the version, between two steps. When the tokenizer changed, every sequence in the
// scheduler ends with "abort" whatever the policy (its ids belong to the old vocabulary), and
// text prompts still queued are tokenized again with the new one. Sequences that no longer fit
// a smaller max_model_len end with "length".
//
// Thread-safe. Start must be called from a thread that lives as long as the engine (spawned
// workers die with that thread, see Supervisor).
#ifndef LOOM_CONTROLLER_SERVING_ENGINE_H_
#define LOOM_CONTROLLER_SERVING_ENGINE_H_

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/engine_config.h"
#include "common/model_config.h"
#include "controller/path_roots.h"
#include "controller/request.h"
#include "controller/scheduler.h"
#include "controller/latency_histogram.h"
#include "controller/served_model.h"
#include "controller/stop_strings.h"
#include "controller/executor.h"
#include "controller/supervisor.h"
#include "controller/tokenizer/incremental_detokenizer.h"
#include "controller/tokenizer/tokenizer.h"
#include "controller/weight_coordinator.h"

namespace loom {

// What one step did, as ServingEngineOptions::on_step sees it.
struct StepStats {
  int64_t num_sequences = 0;
  int64_t num_tokens = 0;          // tokens computed (prompt chunks + decodes)
  int64_t num_prefill_tokens = 0;  // of which prompt tokens
  double seconds = 0;              // the step's wall time, as the engine saw it
};

// Self-healing: when a rank's process ends or stops answering, the engine kills every rank and
// starts the group again (fresh processes and communicators), loads the serving load config as a
// new version, and resumes. Bounded: at most max_restarts within `window`, each attempt after a
// backoff that doubles; past that the engine is broken (as without healing) and says why.
struct RecoveryOptions {
  int max_restarts = 3;  // 0: never restart (a failure breaks the engine)
  std::chrono::milliseconds window = std::chrono::minutes(10);
  std::chrono::milliseconds backoff = std::chrono::milliseconds(100);
  // false: requests in flight are recomputed from prompt + tokens so far on the restarted ranks
  // (none fails); true (`--on-rank-failure fail`): they end with the failure.
  bool fail_in_flight = false;
};

struct ServingEngineOptions {
  EngineConfig config;
  // Worker processes: world_size, launcher, worker binary, device, ... (Start without an
  // executor).
  SupervisorOptions supervisor;
  // CPU threads per rank handed to Init (0: the executor's budget).
  int num_threads = 0;
  std::chrono::milliseconds init_timeout = std::chrono::minutes(5);
  // Called about every 250 ms while the workers load their first weights, with each rank's
  // `describe`.weights (null for a rank that has not said yet). Optional.
  std::function<void(const std::vector<nlohmann::json>& ranks)> on_load_progress;
  // Called on the engine thread after every step that ran (benchmarks). Optional.
  std::function<void(const StepStats& stats)> on_step;
  // Submit refuses (ResourceExhausted: HTTP 429) while this many requests wait to run; 0: no limit.
  int64_t max_waiting = 0;
  // Where the path args of collective methods may point (the method registry says which args
  // are paths); a call outside is refused before any rank sees it. Default: nothing confined.
  PathRoots path_roots;
  RecoveryOptions recovery;
};

// One message of a request's stream.
struct GenerateDelta {
  std::vector<int32_t> token_ids;  // new since the previous delta
  std::string text;                // the text they add ("" without a tokenizer)
  bool done = false;               // the last delta: finish_reason/usage, or error
  FinishReason finish_reason = FinishReason::kNone;
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  absl::Status error;  // non-OK: the request failed (UNAVAILABLE for a dead rank)
  uint64_t weight_version = 0;  // the weights that produced these tokens
  // With GenerationRequest::return_logits: the logits each of token_ids was sampled from.
  std::vector<std::vector<float>> logits;
  // With SamplingParams::logprobs >= 0: each of token_ids' log-probabilities.
  std::vector<TokenLogprobs> logprobs;
};

// The consumer end of one request. Thread-safe.
class RequestStream {
 public:
  // `on_cancel` tells the producer the consumer is gone; it must not block and may be empty.
  explicit RequestStream(std::function<void()> on_cancel = {}) : on_cancel_(std::move(on_cancel)) {}

  // Waits up to `timeout` for what arrived since the last call, merged into one delta. Returns
  // false on timeout (nothing new). After a delta with done = true, nothing more comes.
  bool Next(GenerateDelta* delta, std::chrono::milliseconds timeout);
  // Called after every Push (on the producer's thread, never with a lock of the stream held
  // by the caller), so a consumer can wait for output without polling; null to stop. Once a
  // call to SetListener returns, the previous listener is not running and never runs again.
  void SetListener(std::function<void()> listener);
  // The consumer is gone: later output is dropped, and the producer is told (once) through the
  // `on_cancel` given at construction.
  void Cancel();

  // Producer side (the engine thread).
  void Push(GenerateDelta delta);
  bool cancelled() const;

 private:
  const std::function<void()> on_cancel_;
  mutable absl::Mutex mu_;
  std::deque<GenerateDelta> pending_ ABSL_GUARDED_BY(mu_);
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  absl::Mutex listener_mu_;  // held while the listener runs
  std::function<void()> listener_ ABSL_GUARDED_BY(listener_mu_);
};

// What a request asks for: prompt text (needs a tokenizer) or prompt ids (win when both given).
// Everything a request's stream carried, gathered once it ended.
struct Completion {
  std::vector<int32_t> token_ids;
  std::string text;
  FinishReason finish_reason = FinishReason::kNone;
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  std::vector<uint64_t> weight_versions;  // each token's
  std::vector<std::vector<float>> logits;  // with return_logits: each token's
  std::vector<TokenLogprobs> logprobs;     // with sampling.logprobs >= 0: each token's
};
// Waits for `stream`'s last delta; the request's error when it failed.
absl::StatusOr<Completion> WaitForCompletion(RequestStream& stream);

struct ServingRequest {
  std::string prompt;
  // prompt_ids, sampling, max_tokens (0: the model's generation default), stop ids, ignore_eos.
  GenerationRequest generation;
};

struct RankState {
  int rank = 0;
  std::string state;  // "ready", "failed" or "exited"
  int64_t pid = 0;
  std::string device;
  std::string address;
  std::string error;
  nlohmann::json weights;  // the rank's `describe`.weights (state, serving, staged, progress)
  // From the rank's `describe`: device_name, memory_plan, weight/workspace/KV bytes, blocks.
  nlohmann::json memory;
};

// Requests that ended, by how: a finish reason, or an error (refused by the scheduler, a failed
// step, a dead rank, shutdown).
struct FinishCounts {
  int64_t stop = 0;
  int64_t length = 0;
  int64_t abort = 0;  // the client went away, or a weight switch under the abort policy
  int64_t error = 0;
};

struct EngineStatus {
  // What serves now: the directory of the serving weights' ServedModel and what it gives.
  std::string model;
  std::string tokenizer;  // its tokenizer.json, "" without one
  std::vector<int32_t> eos_token_ids;
  int64_t max_model_len = 0;
  int64_t default_max_tokens = 0;
  int world_size = 0;
  int64_t num_kv_blocks = 0;
  int64_t num_free_kv_blocks = 0;  // as of the end of the last step or abort
  // Prefix caching: prompt tokens looked up in the cache, and found there, since the start.
  // Latencies of the requests since the start, and the tokens they read and wrote.
  LatencyHistogram time_to_first_token, inter_token_latency, e2e_request_latency;
  // From arrival to the request's first step (time queued and waiting in the scheduler).
  LatencyHistogram request_queue_time;
  int64_t prompt_tokens_total = 0, generation_tokens_total = 0;
  int64_t prefix_cache_queries = 0;
  int64_t prefix_cache_hits = 0;
  int running_requests = 0;  // admitted to the scheduler
  int waiting_requests = 0;  // submitted, not yet admitted
  uint64_t steps = 0;        // steps run since start
  int64_t preemptions = 0;   // times finished sequences were preempted (and recomputed)
  FinishCounts finished;
  std::vector<RankState> ranks;
  absl::Status broken;  // OK while the engine serves
  bool draining = false;  // Drain was called: no new requests, the running ones finish
  int64_t restarts = 0;       // times the ranks were restarted after a failure
  std::string last_failure;   // what failed last ("" when nothing did)
  bool healing = false;       // a restart is under way: requests wait
  int sleep_level = 0;    // 0 awake; 1 or 2: asleep (sleep), new requests refused
  uint64_t serving_weight_version = 0;
  uint64_t staged_weight_version = 0;
  uint64_t previous_weight_version = 0;  // kept for rollback_weights (0: none)
  std::string controller_address;
  std::string session_id;
};

class ServingEngine {
 public:
  // How often an idle engine checks that every rank is alive.
  static constexpr std::chrono::milliseconds kHealthPollInterval{100};

  // Starts the workers, initialises them, loads the tokenizer and starts the engine thread.
  static absl::StatusOr<std::unique_ptr<ServingEngine>> Start(const ServingEngineOptions& options);
  // The same over a given executor (e.g. InProcessExecutor); options.supervisor is unused.
  static absl::StatusOr<std::unique_ptr<ServingEngine>> Start(const ServingEngineOptions& options,
                                                              std::unique_ptr<Executor> executor);
  ~ServingEngine();  // Stop()

  ServingEngine(const ServingEngine&) = delete;
  ServingEngine& operator=(const ServingEngine&) = delete;

  // The most choices one request may ask for (OpenAI's `n`, GenerateRequest.n).
  static constexpr int kMaxChoices = 16;

  // Validates and queues a request. InvalidArgument for bad input (text without a tokenizer,
  // ids outside the vocabulary, bad sampling), Unavailable when the engine is broken, stopped
  // or draining, ResourceExhausted when --max-waiting requests already wait.
  absl::StatusOr<std::shared_ptr<RequestStream>> Submit(ServingRequest request);
  // `n` choices of one request (n in [1, kMaxChoices]): the prompt is tokenized once, choice k
  // samples with seed + k, and all n are queued or none is (they count n against max_waiting).
  absl::StatusOr<std::vector<std::shared_ptr<RequestStream>>> SubmitChoices(
      ServingRequest request, int n);

  // Graceful shutdown's first half: from now on Submit refuses (Unavailable, "draining") while
  // the requests already submitted run to their end. Idempotent; Stop still ends everything.
  void Drain();
  // Whether Drain was called.
  bool draining() const;
  // Requests submitted and not yet ended (queued, waiting or running).
  int64_t InFlight() const;

  // A collective call on the workers (empty ranks = all). Weight methods go through the
  // WeightCoordinator (all ranks only), which orders them with the steps.
  absl::StatusOr<std::vector<RankResult>> CollectiveCall(const std::string& method,
                                                         const std::string& args_json,
                                                         std::chrono::milliseconds timeout,
                                                         const std::vector<int>& ranks = {});

  // Whether `method` needs the admin key, as the ranks' method registry declares it (a method
  // the ranks do not have counts as one that does).
  bool MethodNeedsAdmin(const std::string& method) const;

  EngineStatus Status() const;
  int world_size() const { return executor_->world_size(); }
  // The shape the ranks were built with (a directory switch never changes it).
  const ModelConfig& model_config() const { return model_config_; }
  bool has_tokenizer() const;
  // What serves now: model directory, tokenizer, eos ids, generation defaults.
  std::shared_ptr<const ServedModel> served_model() const { return CurrentModel(); }

  // Ends every request (UNAVAILABLE), stops the engine thread and the workers. Idempotent.
  void Stop();

 private:
  struct Active {
    std::shared_ptr<RequestStream> stream;
    std::shared_ptr<const tokenizer::Tokenizer> tokenizer;  // what `detokenizer` points into
    std::unique_ptr<tokenizer::IncrementalDetokenizer> detokenizer;
    int64_t prompt_tokens = 0;
    int64_t completion_tokens = 0;
    bool return_logits = false;
    StopStringMatcher stops;  // what of the text may be released
    std::chrono::steady_clock::time_point arrival, last_token;  // for the latency histograms
    bool scheduled = false;  // has been in a step (its queue time is recorded)
  };
  struct Queued {
    GenerationRequest request;
    std::shared_ptr<RequestStream> stream;
    std::string prompt;  // the text prompt_ids came from ("" when sent as ids)
    std::shared_ptr<const ServedModel> model;  // the one that tokenized it
    std::chrono::steady_clock::time_point arrival = std::chrono::steady_clock::now();
  };

  explicit ServingEngine(const ServingEngineOptions& options) : options_(options) {}
  static absl::StatusOr<std::unique_ptr<ServingEngine>> Start(
      const ServingEngineOptions& options, std::shared_ptr<const ServedModel> model,
      std::unique_ptr<Executor> executor);
  void Loop();
  // Admits queued requests into the scheduler; ends the ones it refuses.
  void Admit(std::deque<Queued> queued);
  void RunStep();
  void EmitToken(Active& active, int32_t token, GenerateDelta& delta);
  // The rest of a finishing request's text: the detokenizer's and the stop matcher's tails.
  std::string FinalText(Active& active);
  // Ends active request `id` now with `reason` (its stream gets the last delta) and counts it.
  void EndActive(int64_t id, FinishReason reason);
  // Aborts the sequences whose clients went away (on the engine thread, between steps).
  void DropCancelled();
  void CountFinished(FinishReason reason);
  void CountErrors(int64_t n);  // requests that ended with an error
  // Publishes what Status reads from engine-thread state (running, free blocks).
  void Publish();
  std::shared_ptr<const ServedModel> CurrentModel() const;
  // Ends every active request with `error` and starts a fresh scheduler.
  void FailAll(const absl::Status& error);
  // Runs `fn` on the engine thread between steps (WeightCoordinatorHooks::between_steps).
  absl::Status BetweenSteps(std::function<absl::Status()> fn);
  // The weights switched to `version`, served as `model` says (on the engine thread).
  void Switched(uint64_t version, SwitchPolicy policy, std::shared_ptr<const ServedModel> model);
  void Break(const absl::Status& error);
  // A rank failed with `failure`: restarts the ranks within the recovery budget (on the engine
  // thread). True once they serve again; false when the budget is spent or healing is not
  // possible here (the caller then breaks the engine with the returned reason).
  bool Heal(const absl::Status& failure, absl::Status* why_not);
  // Heal, or break the engine when it cannot.
  void HealOrBreak(const absl::Status& failure);
  // The ranks slept at `level` (in-flight sequences follow `policy`) or woke (level 0).
  void Slept(int level, SwitchPolicy policy);
  absl::Status CheckRanks() const;
  void NewScheduler();

  const ServingEngineOptions options_;
  ModelConfig model_config_;
  // Rank 0's method registry, {name: {"admin", "path_args"}}: set by Start, read-only after.
  nlohmann::json method_specs_ = nlohmann::json::object();
  int64_t num_kv_blocks_ = 0;
  // Stopped (not reset) by Stop, after the engine thread is joined: calls from other threads
  // then fail with Unavailable.
  std::unique_ptr<Executor> executor_;
  std::unique_ptr<WeightCoordinator> weights_;

  // Owned by the engine thread.
  std::unique_ptr<Scheduler> scheduler_;
  std::map<int64_t, Active> active_;
  uint64_t serving_version_ = 1;  // what steps carry

  mutable absl::Mutex mu_;
  std::deque<Queued> queue_ ABSL_GUARDED_BY(mu_);
  std::deque<std::function<void()>> between_steps_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
  int sleep_level_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t admitting_ ABSL_GUARDED_BY(mu_) = 0;  // taken off queue_, not yet in active_
  absl::Status broken_ ABSL_GUARDED_BY(mu_);
  int64_t restarts_ ABSL_GUARDED_BY(mu_) = 0;
  std::string last_failure_ ABSL_GUARDED_BY(mu_);
  bool healing_ ABSL_GUARDED_BY(mu_) = false;
  std::deque<std::chrono::steady_clock::time_point> restart_times_;  // engine thread
  int num_running_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t num_free_blocks_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t num_scheduler_waiting_ ABSL_GUARDED_BY(mu_) = 0;  // admitted, not running
  LatencyHistogram ttft_ ABSL_GUARDED_BY(mu_), itl_ ABSL_GUARDED_BY(mu_),
      e2e_ ABSL_GUARDED_BY(mu_), queue_time_ ABSL_GUARDED_BY(mu_);
  int64_t prompt_tokens_total_ ABSL_GUARDED_BY(mu_) = 0,
          generation_tokens_total_ ABSL_GUARDED_BY(mu_) = 0;
  // Prefix cache: prompt tokens looked up and found, over every scheduler of this engine.
  int64_t prefix_queries_ ABSL_GUARDED_BY(mu_) = 0, prefix_hits_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t prefix_base_queries_ = 0, prefix_base_hits_ = 0;  // of schedulers replaced
  uint64_t steps_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t preemptions_ ABSL_GUARDED_BY(mu_) = 0;
  FinishCounts finished_ ABSL_GUARDED_BY(mu_);
  bool cancel_pending_ ABSL_GUARDED_BY(mu_) = false;  // some stream was cancelled
  // Replaced only by the engine thread (Switched), read by every thread.
  std::shared_ptr<const ServedModel> model_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
  absl::Mutex stop_mu_;
};

}  // namespace loom

#endif  // LOOM_CONTROLLER_SERVING_ENGINE_H_
