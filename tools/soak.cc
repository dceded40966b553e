// loom-soak: long mixed load on one real `loom serve` (its worker processes at --tp), and what the
// processes hold before and after it.
//
// It starts `loom serve` on --model, warms up, and then for --duration keeps --streams gRPC
// Generate streams busy with requests of random prompt lengths, lengths, sampling and choice
// counts, a --cancel-fraction of them cancelled by the client at a random point of the stream
// (before the first token included). Every --admin-interval seconds one weight or config call
// goes through CollectiveRpc, the path `loom rpc` takes, in a fixed cycle: reload (staged, in
// place, auto), stage + commit of the other model directory, commit keeping the previous set,
// rollback, release, and update_config of the load config there and back. The warm-up runs the
// same load and the whole cycle once, so what is created lazily (gRPC threads, allocator arenas,
// the double-buffered weight sets) exists before the first measurement.
//
// Both measurements are taken with the server idle (no request running or waiting, then one more
// second): RSS, open fds and threads of the controller and of every worker the server's status
// names. A request that was not cancelled must end OK with its finish reasons "length" or "stop"
// and as many tokens as its usage says; every failure is printed with its error. It exits
// non-zero on any failed request or admin call, on RSS growth of --max-rss-growth percent or more
// on any process, on any growth of fds or threads past --fd-slack / --thread-slack, when a worker's
// pid changed, and when the idle server still holds requests or KV blocks. docs/soak.md has the
// details and measured runs.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "common/flags.h"
#include "common/model_config.h"
#include "common/status.h"
#include "loom/v1/loom.grpc.pb.h"
#include "tools/bench_stats.h"
#include "tools/serve_child.h"

namespace loom::cli {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using nlohmann::json;

constexpr char kUsage[] =
    "usage: loom-soak [--model DIR] [--tp 2] [--duration 60] [--streams 64] [options]\n\n"
    "Starts `loom serve` on --model, keeps --streams gRPC streams generating (random lengths,\n"
    "random client cancels) for --duration seconds while weight and config calls run every\n"
    "--admin-interval seconds, and prints Markdown tables of the requests, the admin calls and\n"
    "every process's RSS, fds and threads before and after. Exits non-zero on a failed request\n"
    "or call, on RSS growth past --max-rss-growth %, and on fd or thread growth.\n";

// ---- Processes -----------------------------------------------------------------------------

struct ProcSample {
  int64_t rss_kb = -1;
  int64_t fds = -1;
  int64_t threads = -1;
  std::map<std::string, int> thread_names;  // /proc/PID/task/*/comm: how many of each
  std::map<std::string, int> fd_targets;    // where /proc/PID/fd/* point, sockets as "socket"
};

// "name ×2, other" for the names `b` has more of than `a`.
std::string MoreIn(const std::map<std::string, int>& a, const std::map<std::string, int>& b) {
  std::vector<std::string> more;
  for (const auto& [name, count] : b) {
    const auto it = a.find(name);
    const int extra = count - (it == a.end() ? 0 : it->second);
    if (extra > 0) more.push_back(extra == 1 ? name : absl::StrCat(name, " x", extra));
  }
  return absl::StrJoin(more, ", ");
}

ProcSample Sample(int64_t pid) {
  ProcSample s;
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  for (std::string line; std::getline(status, line);) {
    const auto value = [&line] {
      int64_t v = -1;
      absl::string_view rest = absl::string_view(line).substr(line.find(':') + 1);
      absl::ConsumeSuffix(&rest, " kB");
      (void)absl::SimpleAtoi(rest, &v);
      return v;
    };
    if (absl::StartsWith(line, "VmRSS:")) s.rss_kb = value();
    if (absl::StartsWith(line, "Threads:")) s.threads = value();
  }
  std::error_code ec;
  const fs::path fd_dir = absl::StrCat("/proc/", pid, "/fd");
  for (const fs::directory_entry& e : fs::directory_iterator(fd_dir, ec)) {
    std::string target = fs::read_symlink(e.path(), ec).string();
    if (absl::StartsWith(target, "socket:")) target = "socket";
    if (absl::StartsWith(target, "pipe:")) target = "pipe";
    if (absl::StartsWith(target, "anon_inode:")) target = target.substr(0, target.find('['));
    ++s.fd_targets[target];
  }
  if (!ec) s.fds = 0;
  for (const auto& [target, count] : s.fd_targets) s.fds += count;
  for (const fs::directory_entry& e :
       fs::directory_iterator(absl::StrCat("/proc/", pid, "/task"), ec)) {
    std::ifstream comm(e.path() / "comm");
    std::string name;
    std::getline(comm, name);
    ++s.thread_names[name];
  }
  return s;
}

// The name (as /proc shows it, 15 characters) of gRPC's global timer threads, and how many more
// of them a process may have at the end (see the thread check in Run).
constexpr char kGrpcTimerThread[] = "grpc_global_tim";
constexpr int64_t kGrpcTimerSlack = 2;

struct Process {
  std::string name;  // "controller", "rank 0", ...
  int64_t pid = 0;
};

// ---- Requests ------------------------------------------------------------------------------

struct Load {
  int64_t vocab = 0;
  int64_t max_prompt = 0;
  int64_t max_tokens = 0;
  double cancel_fraction = 0;
  std::chrono::seconds request_deadline{120};
};

struct Totals {
  int64_t sent = 0, completed = 0, cancelled = 0, failed = 0, tokens = 0;
  std::vector<std::string> failures;  // the first ones, with their errors

  void Add(const Totals& o) {
    sent += o.sent;
    completed += o.completed;
    cancelled += o.cancelled;
    failed += o.failed;
    tokens += o.tokens;
    for (const std::string& f : o.failures) {
      if (failures.size() < 50) failures.push_back(f);
    }
  }
};

std::shared_ptr<grpc::Channel> NewChannel(const std::string& address) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // a connection of its own
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
}

std::string Describe(const loom::v1::GenerateRequest& r, int64_t cancel_after) {
  return absl::StrFormat(
      "prompt %d ids, max_tokens %d, n %d, temperature %.1f%s%s%s%s", r.prompt_ids_size(),
      r.max_tokens(), std::max(1, r.n()), r.temperature(), r.ignore_eos() ? ", ignore_eos" : "",
      r.stop_size() ? ", stop" : "", r.logprobs() ? ", logprobs" : "",
      cancel_after >= 0 ? absl::StrCat(", cancel after ", cancel_after, " tokens") : "");
}

// One request: sends it, reads the stream (cancelling it once `cancel_after` tokens came, when
// that is not negative) and counts the outcome in `t`.
void OneRequest(loom::v1::Loom::Stub& stub, const loom::v1::GenerateRequest& request,
                int64_t cancel_after, const Load& load, Totals& t) {
  ++t.sent;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + load.request_deadline);
  // A new connection's first attempt may fail transiently (seen: 24–48 first requests of fresh
  // channels, UNAVAILABLE "failed to connect", with the server up and serving the other
  // streams); wait-for-ready retries the connect within the deadline, as a production client
  // would. A server that stays unreachable still fails every request at the deadline.
  context.set_wait_for_ready(true);
  auto reader = stub.Generate(&context, request);
  bool cancelled = false;
  if (cancel_after == 0) {
    context.TryCancel();
    cancelled = true;
  }
  const int n = std::max(1, request.n());
  std::vector<int64_t> received(n, 0), usage(n, -1);
  std::vector<std::string> finish(n);
  std::string problem;
  int64_t total = 0;
  loom::v1::GenerateResponse response;
  while (reader->Read(&response)) {
    const int i = response.index();
    if (i < 0 || i >= n) {
      problem = absl::StrCat("a message for choice ", i, " of ", n);
      continue;
    }
    received[i] += response.token_ids_size();
    if (request.logprobs() && response.logprobs_size() != response.token_ids_size()) {
      problem = absl::StrCat("choice ", i, ": ", response.logprobs_size(), " logprobs for ",
                             response.token_ids_size(), " tokens");
    }
    total += response.token_ids_size();
    if (!response.finish_reason().empty()) finish[i] = response.finish_reason();
    if (response.has_usage()) usage[i] = response.usage().completion_tokens();
    if (!cancelled && cancel_after > 0 && total >= cancel_after) {
      context.TryCancel();
      cancelled = true;
    }
  }
  const grpc::Status status = reader->Finish();
  t.tokens += total;
  if (cancelled && status.error_code() == grpc::StatusCode::CANCELLED) {
    ++t.cancelled;
    return;
  }
  if (!status.ok()) {
    problem = absl::StrCat("gRPC ", status.error_code(), ": ", status.error_message());
  }
  for (int i = 0; i < n && problem.empty(); ++i) {
    if (finish[i] != "length" && finish[i] != "stop") {
      problem = absl::StrCat("choice ", i, " finished with \"", finish[i], "\"");
    } else if (usage[i] != received[i]) {
      problem =
          absl::StrCat("choice ", i, ": ", received[i], " tokens streamed, usage says ", usage[i]);
    } else if (received[i] > request.max_tokens() ||
               (finish[i] == "length" && received[i] != request.max_tokens())) {
      problem = absl::StrCat("choice ", i, ": ", received[i], " tokens with max_tokens ",
                             request.max_tokens(), ", finish \"", finish[i], "\"");
    }
  }
  if (problem.empty()) {
    ++t.completed;
    return;
  }
  ++t.failed;
  if (t.failures.size() < 50) {
    t.failures.push_back(absl::StrCat(problem, " (", Describe(request, cancel_after), ")"));
  }
}

// A stream: requests one after another until `stop`, on a connection of its own that it replaces
// every few dozen requests (so connections come and go as well).
void Stream(const std::string& address, const Load& load, uint64_t seed,
            const std::atomic<bool>& stop, Totals& t) {
  std::mt19937_64 rng(seed);
  const auto uniform = [&rng](int64_t lo, int64_t hi) {
    return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
  };
  const auto chance = [&rng](double p) { return std::bernoulli_distribution(p)(rng); };
  std::unique_ptr<loom::v1::Loom::Stub> stub;
  int64_t left_on_channel = 0;
  while (!stop.load()) {
    if (left_on_channel-- <= 0) {
      stub = loom::v1::Loom::NewStub(NewChannel(address));
      left_on_channel = uniform(20, 60);
    }
    loom::v1::GenerateRequest request;
    const int64_t prompt_len = uniform(1, load.max_prompt);
    for (int64_t i = 0; i < prompt_len; ++i) request.add_prompt_ids(uniform(0, load.vocab - 1));
    request.set_max_tokens(static_cast<int32_t>(uniform(1, load.max_tokens)));
    if (chance(0.5)) {
      request.set_temperature(0.8f);
      request.set_top_k(40);
      request.set_seed(static_cast<uint64_t>(uniform(0, 1 << 30)));
    }
    request.set_ignore_eos(chance(0.7));
    if (chance(0.1)) request.set_n(2);
    if (chance(0.1)) request.add_stop(" the");  // text matched across tokens: finish "stop"
    if (chance(0.1)) {
      request.set_logprobs(true);
      request.set_top_logprobs(static_cast<int32_t>(uniform(0, 5)));
    }
    if (chance(0.1)) {
      request.set_presence_penalty(0.5f);
      request.set_frequency_penalty(0.3f);
      request.set_repetition_penalty(1.1f);
    }
    int64_t cancel_after = -1;
    if (chance(load.cancel_fraction)) cancel_after = uniform(0, request.max_tokens());
    OneRequest(*stub, request, cancel_after, load, t);
  }
}

// ---- Admin calls ---------------------------------------------------------------------------

struct AdminCall {
  std::string method;
  json args;
};

struct AdminStats {
  int64_t calls = 0, failed = 0;
  std::vector<double> seconds;
};

class Admin {
 public:
  Admin(loom::v1::Loom::Stub& stub, std::string model, std::string alt)
      : stub_(stub), model_(std::move(model)), alt_(std::move(alt)) {}

  // The next step of the cycle: one or two calls (a stage and its commit go together).
  std::vector<AdminCall> Next() {
    const json serving = {{"source", {{"model", model_}}}};
    const json other = {{"source", {{"model", alt_}}}};
    std::vector<std::vector<AdminCall>> cycle = {
        {{"reload_weights", {{"mode", "staged"}}}},
        {{"stage_weights", other}, {"commit_weights", json::object()}},
        {{"update_config", {{"load_config", {{"model", alt_}, {"stage_share", 0.4}}}}}},
        {{"reload_weights", {{"mode", "in_place"}}}},
        {{"stage_weights", serving}, {"commit_weights", {{"keep_previous", true}}}},
        {{"rollback_weights", json::object()}},
        {{"release_previous_weights", json::object()}},
        {{"update_config", {{"load_config", {{"model", model_}, {"stage_share", 0.5}}}}},
         {"reload_weights", json::object()}},
    };
    return cycle[step_++ % cycle.size()];
  }
  size_t cycle_length() const { return 8; }

  // Runs `call`; false (and the error kept) when the call or any rank failed.
  bool Run(const AdminCall& call) {
    loom::v1::CollectiveRpcRequest request;
    request.set_method(call.method);
    request.set_args_json(call.args.dump());
    request.set_timeout_ms(120000);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(150));
    loom::v1::CollectiveRpcResponse response;
    const Clock::time_point start = Clock::now();
    const grpc::Status status = stub_.CollectiveRpc(&context, request, &response);
    const double seconds = Seconds(start, Clock::now());
    std::string error;
    if (!status.ok()) {
      error = absl::StrCat("gRPC ", status.error_code(), ": ", status.error_message());
    }
    for (const loom::v1::RankResult& r : response.results()) {
      if (error.empty() && !r.error().empty())
        error = absl::StrCat("rank ", r.rank(), ": ", r.error());
    }
    std::lock_guard<std::mutex> lock(mu_);
    AdminStats& s = stats_[call.method];
    ++s.calls;
    s.seconds.push_back(seconds);
    if (error.empty()) return true;
    ++s.failed;
    if (failures_.size() < 50) {
      failures_.push_back(absl::StrCat(call.method, " ", call.args.dump(), ": ", error));
    }
    return false;
  }

  // Until `stop`: one cycle step every `interval` (back to back when zero, for `steps` steps).
  void Loop(std::chrono::milliseconds interval, const std::atomic<bool>& stop, size_t steps) {
    Clock::time_point next = Clock::now() + interval;
    for (size_t done = 0; !stop.load() && done < steps; ++done) {
      while (!stop.load() && Clock::now() < next) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
      if (stop.load()) return;
      for (const AdminCall& call : Next()) {
        if (!Run(call)) break;  // a failed stage has nothing to commit
      }
      next += interval;
    }
  }

  std::map<std::string, AdminStats> stats() const {
    std::lock_guard<std::mutex> lock(mu_);
    return stats_;
  }
  std::vector<std::string> failures() const {
    std::lock_guard<std::mutex> lock(mu_);
    return failures_;
  }

 private:
  loom::v1::Loom::Stub& stub_;
  const std::string model_, alt_;
  size_t step_ = 0;
  mutable std::mutex mu_;
  std::map<std::string, AdminStats> stats_;
  std::vector<std::string> failures_;
};

// ---- The run -------------------------------------------------------------------------------

absl::StatusOr<loom::v1::GetStatusResponse> GetStatus(loom::v1::Loom::Stub& stub) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  loom::v1::GetStatusResponse s;
  const grpc::Status st = stub.GetStatus(&context, loom::v1::GetStatusRequest(), &s);
  if (!st.ok()) return absl::UnavailableError(absl::StrCat("GetStatus: ", st.error_message()));
  return s;
}

// Waits until no request runs or waits, then one more second; the status then.
absl::StatusOr<loom::v1::GetStatusResponse> WaitIdle(loom::v1::Loom::Stub& stub) {
  const Clock::time_point deadline = Clock::now() + std::chrono::seconds(60);
  while (true) {
    LOOM_ASSIGN_OR_RETURN(loom::v1::GetStatusResponse s, GetStatus(stub));
    if (s.running_requests() == 0 && s.waiting_requests() == 0) break;
    if (Clock::now() > deadline) {
      return absl::DeadlineExceededError(absl::StrCat(
          "the server did not go idle within 60 s of the last request: ", s.running_requests(),
          " running, ", s.waiting_requests(), " waiting"));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  std::this_thread::sleep_for(std::chrono::seconds(1));
  return GetStatus(stub);
}

// One phase: `streams` streams for `duration`, the admin loop beside them; with `full_cycle` the
// admin calls run back to back once around the cycle and the phase lasts until they are done.
// `every` runs about every 30 s of the phase (not at all when empty).
Totals RunPhase(const std::string& address, const Load& load, int64_t streams,
                std::chrono::milliseconds duration, Admin& admin,
                std::chrono::milliseconds admin_interval, bool full_cycle, uint64_t seed,
                const std::function<void()>& every = {}) {
  std::atomic<bool> stop{false}, admin_stop{false};
  std::vector<Totals> totals(streams);
  std::vector<std::thread> threads;
  for (int64_t i = 0; i < streams; ++i) {
    threads.emplace_back([&, i] { Stream(address, load, seed * 1000003 + i, stop, totals[i]); });
  }
  const Clock::time_point end = Clock::now() + duration;
  std::thread admin_thread([&] {
    if (full_cycle) {
      admin.Loop(std::chrono::milliseconds(0), admin_stop, admin.cycle_length());
    } else {
      admin.Loop(admin_interval, admin_stop, SIZE_MAX);
    }
  });
  if (full_cycle) admin_thread.join();
  Clock::time_point next_sample = Clock::now() + std::chrono::seconds(30);
  while (Clock::now() < end) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (every && Clock::now() >= next_sample) {
      every();
      next_sample += std::chrono::seconds(30);
    }
  }
  admin_stop = true;
  if (admin_thread.joinable()) admin_thread.join();
  stop = true;
  for (std::thread& t : threads) t.join();
  Totals sum;
  for (const Totals& t : totals) sum.Add(t);
  return sum;
}

std::string Mb(int64_t kb) { return absl::StrFormat("%.1f", kb / 1024.0); }
std::string Growth(int64_t a, int64_t b) {
  return absl::StrFormat("%+lld", static_cast<long long>(b - a));
}

absl::StatusOr<std::chrono::milliseconds> SecondsFlag(const Flags& flags, const std::string& name,
                                                      double fallback) {
  const std::string given = flags.String(name, absl::StrCat(fallback));
  absl::string_view text = given;
  double scale = 1;
  if (absl::ConsumeSuffix(&text, "ms")) {
    scale = 0.001;
  } else if (absl::ConsumeSuffix(&text, "m")) {
    scale = 60;
  } else {
    absl::ConsumeSuffix(&text, "s");
  }
  double v = 0;
  if (!absl::SimpleAtod(text, &v) || v < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--", name, ": not a duration (seconds, or with s, ms or m): ", flags.String(name)));
  }
  return std::chrono::milliseconds(static_cast<int64_t>(v * scale * 1000));
}

absl::Status Run(const Flags& flags) {
  if (!flags.positional().empty()) return absl::InvalidArgumentError(kUsage);
  LOOM_ASSIGN_OR_RETURN(const auto duration, SecondsFlag(flags, "duration", 60));
  LOOM_ASSIGN_OR_RETURN(const auto warmup, SecondsFlag(flags, "warmup", 10));
  LOOM_ASSIGN_OR_RETURN(const auto admin_interval, SecondsFlag(flags, "admin-interval", 3));
  LOOM_ASSIGN_OR_RETURN(const int64_t tp, flags.Int("tp", 2));
  LOOM_ASSIGN_OR_RETURN(const int64_t streams, flags.Int("streams", 64));
  LOOM_ASSIGN_OR_RETURN(const int64_t seed, flags.Int("seed", 1));
  LOOM_ASSIGN_OR_RETURN(const double max_rss_growth, flags.Double("max-rss-growth", 5));
  LOOM_ASSIGN_OR_RETURN(const int64_t fd_slack, flags.Int("fd-slack", 0));
  LOOM_ASSIGN_OR_RETURN(const int64_t thread_slack, flags.Int("thread-slack", 0));
  Load load;
  LOOM_ASSIGN_OR_RETURN(load.max_prompt, flags.Int("max-prompt", 48));
  LOOM_ASSIGN_OR_RETURN(load.max_tokens, flags.Int("max-tokens", 64));
  LOOM_ASSIGN_OR_RETURN(load.cancel_fraction, flags.Double("cancel-fraction", 0.25));
  if (tp < 1 || streams < 1 || load.max_prompt < 1 || load.max_tokens < 1 ||
      load.cancel_fraction < 0 || load.cancel_fraction > 1 || admin_interval.count() == 0) {
    return absl::InvalidArgumentError(
        "--tp, --streams, --max-prompt, --max-tokens and --admin-interval must be positive, "
        "--cancel-fraction in [0, 1]");
  }
  const std::string model = fs::absolute(flags.String("model", LOOM_DEFAULT_MODEL)).string();
  const std::string alt =
      fs::absolute(flags.String("alt-model", flags.Has("model") ? flags.String("model")
                                                                : LOOM_DEFAULT_ALT_MODEL))
          .string();
  LOOM_ASSIGN_OR_RETURN(const ModelConfig mc, ModelConfig::FromModelDir(model));
  load.vocab = mc.vocab_size;

  std::vector<std::string> args = {(SelfDir() / "loom").string(),
                                   "serve",
                                   "--model",
                                   model,
                                   "--tp",
                                   absl::StrCat(tp),
                                   "--port",
                                   "0",
                                   "--http-port",
                                   "0",
                                   "--kv-cache-memory",
                                   flags.String("kv-cache-memory", "16M")};
  for (const std::string& a : flags.All("serve-arg")) args.push_back(a);
  std::fprintf(stderr, "loom-soak: starting %s\n", absl::StrJoin(args, " ").c_str());
  const Clock::time_point started = Clock::now();
  LOOM_ASSIGN_OR_RETURN(std::unique_ptr<ServeChild> serve,
                        ServeChild::Start({.argv = args, .name = "loom-soak"}));
  const double start_seconds = Seconds(started, Clock::now());
  auto stub = loom::v1::Loom::NewStub(NewChannel(serve->address()));
  Admin admin(*stub, model, alt);

  std::fprintf(stderr, "loom-soak: ready in %.1f s; warm-up (%.0f s and one admin cycle)\n",
               start_seconds, warmup.count() / 1000.0);
  const Totals warm = RunPhase(serve->address(), load, streams, warmup, admin, admin_interval,
                               /*full_cycle=*/true, static_cast<uint64_t>(seed));
  LOOM_ASSIGN_OR_RETURN(const loom::v1::GetStatusResponse before, WaitIdle(*stub));
  std::vector<Process> processes = {{"controller", serve->pid()}};
  for (const loom::v1::RankStatus& r : before.ranks()) {
    processes.push_back({absl::StrCat("rank ", r.rank()), r.pid()});
  }
  std::vector<ProcSample> first;
  for (const Process& p : processes) first.push_back(Sample(p.pid));

  std::fprintf(stderr, "loom-soak: soak for %.0f s, %lld streams, admin call every %.1f s\n",
               duration.count() / 1000.0, static_cast<long long>(streams),
               admin_interval.count() / 1000.0);
  const Clock::time_point soak_start = Clock::now();
  const Totals main = RunPhase(serve->address(), load, streams, duration, admin, admin_interval,
                               /*full_cycle=*/false, static_cast<uint64_t>(seed) + 1, [&] {
                                 // The trend under load, to tell growth from a step.
                                 std::string line;
                                 for (const Process& p : processes) {
                                   absl::StrAppend(&line, line.empty() ? "" : ", ", p.name, " ",
                                                   Mb(Sample(p.pid).rss_kb));
                                 }
                                 std::fprintf(stderr, "loom-soak: %.0f s: RSS MB %s\n",
                                              Seconds(soak_start, Clock::now()), line.c_str());
                               });
  const double soak_seconds = Seconds(soak_start, Clock::now());
  LOOM_ASSIGN_OR_RETURN(const loom::v1::GetStatusResponse after, WaitIdle(*stub));
  std::vector<ProcSample> last;
  for (const Process& p : processes) last.push_back(Sample(p.pid));

  // ---- Report ----
  std::vector<std::string> problems;
  std::printf(
      "## loom-soak: %s, tp=%lld, %lld streams, %.0f s (after a %.0f s warm-up), admin "
      "call every %.1f s\n\n",
      model.c_str(), static_cast<long long>(tp), static_cast<long long>(streams), soak_seconds,
      warmup.count() / 1000.0, admin_interval.count() / 1000.0);
  std::printf("| phase | sent | completed | cancelled | failed | tokens | requests/s |\n");
  std::printf("|---|---:|---:|---:|---:|---:|---:|\n");
  const auto row = [](const char* name, const Totals& t, double seconds) {
    std::printf("| %s | %lld | %lld | %lld | %lld | %lld | %.1f |\n", name,
                static_cast<long long>(t.sent), static_cast<long long>(t.completed),
                static_cast<long long>(t.cancelled), static_cast<long long>(t.failed),
                static_cast<long long>(t.tokens), seconds > 0 ? t.sent / seconds : 0.0);
  };
  row("warm-up", warm, 0);
  row("soak", main, soak_seconds);

  std::printf(
      "\n| admin method | calls | failed | median s | max s |\n|---|---:|---:|---:|---:|\n");
  for (const auto& [method, s] : admin.stats()) {
    const std::vector<double>& seconds = s.seconds;
    std::printf("| %s | %lld | %lld | %.3f | %.3f |\n", method.c_str(),
                static_cast<long long>(s.calls), static_cast<long long>(s.failed), Median(seconds),
                *std::max_element(seconds.begin(), seconds.end()));
  }

  std::printf(
      "\n| process | pid | RSS MB start | RSS MB end | RSS growth | fds start | fds end | "
      "threads start | threads end |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  for (size_t i = 0; i < processes.size(); ++i) {
    const ProcSample& a = first[i];
    const ProcSample& b = last[i];
    const double growth = a.rss_kb > 0 ? 100.0 * (b.rss_kb - a.rss_kb) / a.rss_kb : 0;
    std::printf("| %s | %lld | %s | %s | %+.2f %% | %lld | %lld (%s) | %lld | %lld (%s) |\n",
                processes[i].name.c_str(), static_cast<long long>(processes[i].pid),
                Mb(a.rss_kb).c_str(), Mb(b.rss_kb).c_str(), growth, static_cast<long long>(a.fds),
                static_cast<long long>(b.fds), Growth(a.fds, b.fds).c_str(),
                static_cast<long long>(a.threads), static_cast<long long>(b.threads),
                Growth(a.threads, b.threads).c_str());
    const std::string& name = processes[i].name;
    if (a.rss_kb < 0 || b.rss_kb < 0) {
      problems.push_back(absl::StrCat(name, " (pid ", processes[i].pid, ") is gone"));
      continue;
    }
    if (growth >= max_rss_growth) {
      problems.push_back(
          absl::StrFormat("%s: RSS grew %.2f %% (limit %.1f %%)", name, growth, max_rss_growth));
    }
    if (b.fds - a.fds > fd_slack) {
      problems.push_back(absl::StrCat(name, ": ", b.fds - a.fds, " more open fds (",
                                      MoreIn(a.fd_targets, b.fd_targets), ")"));
    }
    // gRPC starts another global timer thread whenever every one of them is running timer
    // callbacks at once (timer_manager.cc), and none ends before shutdown: a high-water mark
    // that a busy CPU raises by one now and then, not a thread per request or per call.
    const auto count = [](const std::map<std::string, int>& m, const std::string& k) {
      const auto it = m.find(k);
      return it == m.end() ? 0 : it->second;
    };
    const int64_t timer_growth =
        count(b.thread_names, kGrpcTimerThread) - count(a.thread_names, kGrpcTimerThread);
    const int64_t excused = std::clamp<int64_t>(timer_growth, 0, kGrpcTimerSlack);
    if (b.threads - a.threads - excused > thread_slack) {
      problems.push_back(absl::StrCat(name, ": ", b.threads - a.threads, " more threads (",
                                      MoreIn(a.thread_names, b.thread_names), ")"));
    }
  }
  std::printf(
      "\nServer after the soak: %d running, %d waiting, %lld of %lld KV blocks free; "
      "finished during the soak: %lld stop, %lld length, %lld abort, %lld error; weights "
      "version %llu.\n",
      after.running_requests(), after.waiting_requests(),
      static_cast<long long>(after.num_free_kv_blocks()),
      static_cast<long long>(after.num_kv_blocks()),
      static_cast<long long>(after.finished().stop() - before.finished().stop()),
      static_cast<long long>(after.finished().length() - before.finished().length()),
      static_cast<long long>(after.finished().abort() - before.finished().abort()),
      static_cast<long long>(after.finished().error() - before.finished().error()),
      static_cast<unsigned long long>(after.serving_weight_version()));
  if (after.num_free_kv_blocks() != after.num_kv_blocks()) {
    problems.push_back(absl::StrCat("the idle server holds ",
                                    after.num_kv_blocks() - after.num_free_kv_blocks(),
                                    " KV blocks"));
  }
  if (after.ranks_size() != before.ranks_size()) {
    problems.push_back("the server's ranks changed");
  }
  for (int i = 0; i < std::min(after.ranks_size(), before.ranks_size()); ++i) {
    if (after.ranks(i).pid() != before.ranks(i).pid() || after.ranks(i).state() != "ready") {
      problems.push_back(absl::StrCat("rank ", after.ranks(i).rank(), ": pid ",
                                      before.ranks(i).pid(), " -> ", after.ranks(i).pid(), ", ",
                                      after.ranks(i).state(), " ", after.ranks(i).error()));
    }
  }
  Totals all = warm;
  all.Add(main);
  for (const std::string& f : all.failures) std::printf("\nfailed request: %s", f.c_str());
  if (all.failed > 0) {
    problems.push_back(absl::StrCat(all.failed, " requests failed (warm-up and soak)"));
  }
  for (const std::string& f : admin.failures()) std::printf("\nfailed admin call: %s", f.c_str());
  int64_t admin_failed = 0;
  for (const auto& [method, s] : admin.stats()) admin_failed += s.failed;
  if (admin_failed > 0) problems.push_back(absl::StrCat(admin_failed, " admin calls failed"));
  if (main.completed == 0) problems.push_back("no request completed during the soak");
  std::printf("\n");
  std::fflush(stdout);
  if (!problems.empty()) {
    return absl::InternalError(absl::StrCat("the soak failed: ", absl::StrJoin(problems, "; ")));
  }
  std::printf("loom-soak: passed\n");
  return absl::OkStatus();
}

std::vector<FlagSpec> Specs() {
  return {
      {"model", false, "model directory of the server", LOOM_DEFAULT_MODEL},
      {"alt-model", false,
       "a directory of the same shape that stages and update_config switch to and back",
       "--model, or " LOOM_DEFAULT_ALT_MODEL " with the default --model"},
      {"tp", false, "tensor-parallel size (worker processes)", "2"},
      {"kv-cache-memory", false,
       "`loom serve --kv-cache-memory`: small, so the warm-up touches every block (a cache's "
       "pages become resident as blocks are first used, which is not a leak)",
       "16M"},
      {"serve-arg", false, "an extra argument for `loom serve`; repeatable", ""},
      {"duration", false, "length of the soak (seconds; or 90s, 5m)", "60"},
      {"warmup", false, "load before the first measurement (also runs one admin cycle)", "10"},
      {"streams", false, "concurrent gRPC streams", "64"},
      {"admin-interval", false, "seconds between admin calls", "3"},
      {"max-prompt", false, "prompt ids per request: uniform in [1, this]", "48"},
      {"max-tokens", false, "max_tokens per request: uniform in [1, this]", "64"},
      {"cancel-fraction", false, "share of requests the client cancels mid-stream", "0.25"},
      {"seed", false, "seed of the random requests", "1"},
      {"max-rss-growth", false, "fail at this RSS growth of any process, in percent", "5"},
      {"fd-slack", false, "open fds a process may gain", "0"},
      {"thread-slack", false,
       "threads a process may gain (besides up to 2 gRPC global timer threads, a high-water mark)",
       "0"},
      {"help", true, "show this help", ""},
  };
}

}  // namespace
}  // namespace loom::cli

int main(int argc, char** argv) {
  return loom::cli::RunVerb("loom-soak", argc, argv, loom::cli::Specs(), loom::cli::kUsage,
                            loom::cli::Run, /*first_arg=*/1);
}
