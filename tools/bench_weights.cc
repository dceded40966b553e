// loom-bench-weights: what the weight lifecycle costs, on real clusters (loom-worker processes,
// Gloo between ranks). For a checkpoint (--model, or a Qwen3-0.6B-shaped bf16 one that
// loom-make-model writes into a temporary directory) at each TP size it prints Markdown tables:
//
//   1. time to ready (ServingEngine::Start returning) for load formats dummy, auto,
//      sharded_state (saved at that TP first) and auto with the broadcast strategy;
//   2. load throughput of auto and sharded_state (bytes read, summed over ranks, over the
//      slowest rank's load time) next to `cat FILES > /dev/null` of the same files and to a
//      read of them into freshly mapped buffers with TP threads (a fresh set's floor);
//   3. reload_weights in each mode (staged, in_place), and a stage double-buffered (into the
//      buffers of the set a commit kept);
//   4. the commit pause of a staged swap: the commit call, the workers' switch, and the largest gap
//      between a decoding client's tokens around the commit against its median gap;
//   4 also splits the largest gap into a step and the re-prefill the recompute policy runs;
//   5. decode tokens/s of concurrent streams, idle and while stage_weights runs in a loop at
//      each --stage-shares value, with each stage's time against an idle one's.
//
// Every number is a median over --repeats runs measured in the same invocation, and every ratio
// is against a baseline from the same invocation. The page cache is warm throughout: the files
// are read once before anything is timed.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/flags.h"
#include "common/model_config.h"
#include "common/status.h"
#include "controller/serving_engine.h"
#include "tools/bench_stats.h"
#include "tools/commands.h"
#include "tools/engine_flags.h"
#include "worker/loader/weight_dtype.h"

namespace loom::cli {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using nlohmann::json;

constexpr char kUsage[] =
    "usage: loom-bench-weights [--model DIR] [--tp 1,2] [--repeats 3] [options]\n\n"
    "Prints Markdown tables of the weight lifecycle's costs at each TP size: time to ready per\n"
    "load format, load throughput against `cat`, reload_weights per mode, the commit pause seen\n"
    "by a decoding client, and decode tokens/s while weights are staged. Without --model it makes\n"
    "a Qwen3-0.6B-shaped bf16 checkpoint (loom-make-model --preset qwen3-0.6b) in a temporary\n"
    "directory. Every figure is a median of --repeats runs; ratios are against baselines measured\n"
    "in the same run, with the page cache warm.\n";

std::string ShellQuote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// The *.safetensors files of `dir`, sorted, and their total size.
struct FileSet {
  std::vector<std::string> paths;
  int64_t bytes = 0;
};

absl::StatusOr<FileSet> Safetensors(const fs::path& dir) {
  FileSet set;
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator(dir, ec)) {
    if (e.is_regular_file() && e.path().extension() == ".safetensors") {
      set.paths.push_back(e.path().string());
      set.bytes += static_cast<int64_t>(e.file_size());
    }
  }
  if (ec) return absl::NotFoundError(absl::StrCat(dir.string(), ": ", ec.message()));
  if (set.paths.empty()) {
    return absl::NotFoundError(absl::StrCat(dir.string(), " holds no .safetensors files"));
  }
  std::sort(set.paths.begin(), set.paths.end());
  return set;
}

// Seconds of `cat FILES > /dev/null` (a shell and a cat process included: a few ms).
absl::StatusOr<double> CatSeconds(const FileSet& files) {
  std::string command = "cat";
  for (const std::string& p : files.paths) absl::StrAppend(&command, " ", ShellQuote(p));
  command += " > /dev/null";
  const auto start = Clock::now();
  const int rc = std::system(command.c_str());
  const double seconds = Seconds(start, Clock::now());
  if (rc != 0) return absl::InternalError(absl::StrCat("`", command, "` failed (", rc, ")"));
  return seconds;
}

// Seconds to read FILES with `threads` threads, each its share of the bytes, into freshly
// mapped buffers: what a load of a fresh weight set cannot beat (the page faults and zeroing of
// new memory included, as a load's are), where `cat` reuses one buffer.
absl::StatusOr<double> FreshReadSeconds(const FileSet& files, int threads) {
  const auto start = Clock::now();
  std::vector<std::thread> readers;
  std::vector<absl::Status> status(threads);
  for (int t = 0; t < threads; ++t) {
    readers.emplace_back([&, t] {
      const int64_t begin = files.bytes * t / threads, end = files.bytes * (t + 1) / threads;
      int64_t offset = 0;  // of the current file in the concatenation
      for (const std::string& path : files.paths) {
        const int64_t size = static_cast<int64_t>(fs::file_size(path));
        const int64_t from = std::max(begin, offset), to = std::min(end, offset + size);
        if (from < to) {
          const size_t n = static_cast<size_t>(to - from);
          void* buf = mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
          const int fd = open(path.c_str(), O_RDONLY);
          size_t done = 0;
          while (buf != MAP_FAILED && fd >= 0 && done < n) {
            const ssize_t got = pread(fd, static_cast<char*>(buf) + done, n - done,
                                      from - offset + static_cast<int64_t>(done));
            if (got <= 0) break;
            done += static_cast<size_t>(got);
          }
          if (done != n) status[t] = absl::InternalError(absl::StrCat("cannot read ", path));
          if (fd >= 0) close(fd);
          if (buf != MAP_FAILED) munmap(buf, n);
        }
        offset += size;
      }
    });
  }
  for (std::thread& r : readers) r.join();
  for (const absl::Status& st : status) LOOM_RETURN_IF_ERROR(st);
  return Seconds(start, Clock::now());
}

fs::path SelfDir() {
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  return ec ? fs::current_path() : self.parent_path();
}

// Removes a directory tree when it goes out of scope (unless --keep-temp).
class TempDir {
 public:
  static absl::StatusOr<TempDir> Make(bool keep) {
    std::string pattern = (fs::temp_directory_path() / "loom-bench-weights-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) {
      return absl::InternalError(absl::StrCat("mkdtemp ", pattern, " failed"));
    }
    return TempDir(pattern, keep);
  }
  TempDir(TempDir&& o) noexcept : path_(std::move(o.path_)), keep_(o.keep_) { o.path_.clear(); }
  TempDir(const TempDir&) = delete;
  ~TempDir() {
    if (path_.empty()) return;
    std::error_code ec;
    if (keep_) {
      std::fprintf(stderr, "loom-bench-weights: kept %s\n", path_.c_str());
    } else {
      fs::remove_all(path_, ec);
    }
  }
  const fs::path& path() const { return path_; }

 private:
  TempDir(fs::path path, bool keep) : path_(std::move(path)), keep_(keep) {}
  fs::path path_;
  bool keep_;
};

struct Settings {
  EngineConfig config;  // load.model is the checkpoint; cache is the time-to-ready cache
  std::string worker_binary;
  int64_t repeats = 3;
  int64_t serve_kv_bytes = int64_t{256} << 20;
  int64_t streams = 4;
  int64_t new_tokens = 48;  // enough decode for paced stages to finish during it
  int64_t prompt_len = 16;
  int64_t commit_tokens = 10;  // tokens before the commit, and again after it
  std::vector<double> shares = {1.0, 0.5, 0.25};  // load_config.stage_share of section 5
  std::chrono::milliseconds rpc_timeout{std::chrono::minutes(10)};
};

absl::StatusOr<std::unique_ptr<ServingEngine>> StartEngine(const Settings& s,
                                                           const EngineConfig& config, int tp) {
  ServingEngineOptions options;
  options.config = config;
  options.supervisor.world_size = tp;
  options.supervisor.worker_binary = s.worker_binary;
  options.supervisor.threads_per_worker = config.num_threads;
  return ServingEngine::Start(options);
}

// A progress line on stderr, with the seconds since the tool started.
void Progress(const std::string& line) {
  static const Clock::time_point start = Clock::now();
  std::fprintf(stderr, "loom-bench-weights: [%6.1f s] %s\n", Seconds(start, Clock::now()),
               line.c_str());
}

// ---- 1 and 2: time to ready, load throughput -------------------------------------------------

struct ReadyRow {
  std::string name;  // "dummy", "auto", "sharded_state", "auto+broadcast"
  std::vector<double> ready_s;
  std::vector<double> load_s;      // slowest rank's initial_load.seconds
  std::vector<double> bytes_read;  // summed over ranks
  std::vector<double> bytes_received;
};

// Starts `config` at `tp`, times Start, and reads every rank's initial_load.
absl::Status TimeStart(const Settings& s, const EngineConfig& config, int tp, ReadyRow& row) {
  const auto start = Clock::now();
  LOOM_ASSIGN_OR_RETURN(std::unique_ptr<ServingEngine> engine, StartEngine(s, config, tp));
  row.ready_s.push_back(Seconds(start, Clock::now()));
  LOOM_ASSIGN_OR_RETURN(std::vector<RankResult> described,
                        engine->CollectiveCall("describe", "{}", s.rpc_timeout));
  double load = 0, read = 0, received = 0;
  for (const RankResult& r : described) {
    const json load_report = r.result.value("initial_load", json::object());
    load = std::max(load, load_report.value("seconds", 0.0));
    read += load_report.value("bytes_read", 0.0);
    received += load_report.value("bytes_received", 0.0);
  }
  row.load_s.push_back(load);
  row.bytes_read.push_back(read);
  row.bytes_received.push_back(received);
  engine->Stop();
  return absl::OkStatus();
}

// ---- 3: reload -----------------------------------------------------------------------------

struct ReloadRow {
  std::vector<double> wall_s;
  std::vector<double> load_s;  // slowest rank's seconds from its report
  std::vector<double> bytes_read;
  std::string mode_ran;
};

absl::Status TimeReload(const Settings& s, ServingEngine& engine, const std::string& mode,
                        ReloadRow& row) {
  const auto start = Clock::now();
  LOOM_ASSIGN_OR_RETURN(
      std::vector<RankResult> results,
      engine.CollectiveCall("reload_weights", json{{"mode", mode}}.dump(), s.rpc_timeout));
  row.wall_s.push_back(Seconds(start, Clock::now()));
  double load = 0, read = 0;
  for (const RankResult& r : results) {
    load = std::max(load, r.result.value("seconds", 0.0));
    read += r.result.value("bytes_read", 0.0);
    row.mode_ran = r.result.value("mode", std::string("?"));
  }
  row.load_s.push_back(load);
  row.bytes_read.push_back(read);
  return absl::OkStatus();
}

// Double buffering: after a commit that kept the previous set, a stage that releases it loads
// into its buffers (memory written before, no page faults), then commits keeping the replaced
// set in turn. Times the stage (wall, and the slowest rank's load) of each round.
absl::Status TimeDoubleBuffered(const Settings& s, ServingEngine& engine, int64_t rounds,
                                ReloadRow& row) {
  // The first round makes the second set; the timed ones reuse it.
  for (int64_t i = 0; i <= rounds; ++i) {
    const json stage = i == 0 ? json::object() : json{{"release_previous", true}};
    const auto start = Clock::now();
    LOOM_ASSIGN_OR_RETURN(std::vector<RankResult> results,
                          engine.CollectiveCall("stage_weights", stage.dump(), s.rpc_timeout));
    const double wall = Seconds(start, Clock::now());
    LOOM_RETURN_IF_ERROR(engine.CollectiveCall("commit_weights", R"({"keep_previous": true})",
                                               s.rpc_timeout)
                             .status());
    if (i == 0) continue;
    double load = 0, read = 0;
    bool reused = true;
    for (const RankResult& r : results) {
      load = std::max(load, r.result.value("seconds", 0.0));
      read += r.result.value("bytes_read", 0.0);
      reused = reused && r.result.value("reused_buffers", false);
    }
    row.wall_s.push_back(wall);
    row.load_s.push_back(load);
    row.bytes_read.push_back(read);
    row.mode_ran = reused ? "staged into the kept set" : "staged (no reuse!)";
  }
  return engine.CollectiveCall("release_previous_weights", "{}", s.rpc_timeout).status();
}

// ---- 4 and 5: streams ------------------------------------------------------------------------

// One client stream read on its own thread: when each delta with tokens arrived.
struct StreamLog {
  std::vector<Clock::time_point> arrivals;
  std::vector<int64_t> tokens;  // tokens in each arrival
  absl::Status error;
};

ServingRequest MakeRequest(const Settings& s, const ModelConfig& model, int64_t index,
                           int64_t max_tokens) {
  ServingRequest r;
  for (int64_t i = 0; i < s.prompt_len; ++i) {
    r.generation.prompt_ids.push_back(
        static_cast<int32_t>((index * 7919 + i * 37 + 11) % model.vocab_size));
  }
  r.generation.max_tokens = max_tokens;
  r.generation.ignore_eos = true;
  return r;
}

// `count` (optional) follows the tokens received, `done` (optional) is set at the end.
void ReadStream(RequestStream& stream, StreamLog& log, std::atomic<int64_t>* count = nullptr,
                std::atomic<bool>* done = nullptr) {
  GenerateDelta d;
  while (true) {
    if (!stream.Next(&d, std::chrono::milliseconds(100))) continue;
    if (!d.token_ids.empty()) {
      log.arrivals.push_back(Clock::now());
      log.tokens.push_back(static_cast<int64_t>(d.token_ids.size()));
      if (count) *count += static_cast<int64_t>(d.token_ids.size());
    }
    if (d.done) {
      log.error = d.error;
      if (done) *done = true;
      return;
    }
  }
}

struct CommitSample {
  double idle_commit_s = 0;
  double idle_switch_s = 0;    // max over ranks
  double busy_commit_s = 0;  // with a stream decoding
  double busy_switch_s = 0;
  double max_gap_s = 0;      // largest gap between token arrivals overlapping the commit
  double median_gap_s = 0;   // of the other gaps
  // What the recompute policy adds to that gap: a prefill of the request's prompt and tokens so
  // far (a request of that many prompt tokens, one new token, on the idle engine).
  double reprefill_s = 0;
  // The idle stage's memory, on the rank that peaked highest: RSS before it, its peak, and the
  // bytes of one weight set.
  double rss_before = 0, peak_rss = 0, weight_bytes = 0;
};

double MaxSwitchSeconds(const std::vector<RankResult>& results) {
  double seconds = 0;
  for (const RankResult& r : results) {
    seconds = std::max(seconds, r.result.value("switch_seconds", 0.0));
  }
  return seconds;
}

absl::StatusOr<CommitSample> MeasureCommit(const Settings& s, ServingEngine& engine) {
  CommitSample sample;
  // Idle: stage, then commit with nothing running.
  LOOM_ASSIGN_OR_RETURN(std::vector<RankResult> staged,
                        engine.CollectiveCall("stage_weights", "{}", s.rpc_timeout));
  for (const RankResult& r : staged) {
    const double peak = r.result.value("peak_rss_bytes", 0.0);
    if (peak < sample.peak_rss) continue;
    sample.peak_rss = peak;
    sample.rss_before = r.result.value("rss_bytes_before", 0.0);
    sample.weight_bytes = r.result.value("weight_bytes", 0.0);
  }
  auto start = Clock::now();
  LOOM_ASSIGN_OR_RETURN(std::vector<RankResult> idle,
                        engine.CollectiveCall("commit_weights", "{}", s.rpc_timeout));
  sample.idle_commit_s = Seconds(start, Clock::now());
  sample.idle_switch_s = MaxSwitchSeconds(idle);

  // Decoding: stage while idle, then one stream; commit after commit_tokens tokens arrived.
  LOOM_RETURN_IF_ERROR(engine.CollectiveCall("stage_weights", "{}", s.rpc_timeout).status());
  LOOM_ASSIGN_OR_RETURN(
      std::shared_ptr<RequestStream> stream,
      engine.Submit(MakeRequest(s, engine.model_config(), 0, 2 * s.commit_tokens + 1)));
  StreamLog log;
  std::atomic<int64_t> count{0};
  std::atomic<bool> done{false};
  std::thread reader([&] { ReadStream(*stream, log, &count, &done); });
  while (count.load() < s.commit_tokens && !done.load()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  const auto commit_start = Clock::now();
  absl::StatusOr<std::vector<RankResult>> busy =
      engine.CollectiveCall("commit_weights", "{}", s.rpc_timeout);
  const auto commit_end = Clock::now();
  reader.join();
  LOOM_RETURN_IF_ERROR(busy.status());
  LOOM_RETURN_IF_ERROR(log.error);
  sample.busy_commit_s = Seconds(commit_start, commit_end);
  sample.busy_switch_s = MaxSwitchSeconds(*busy);
  std::vector<double> others;
  for (size_t i = 1; i < log.arrivals.size(); ++i) {
    const double gap = Seconds(log.arrivals[i - 1], log.arrivals[i]);
    if (log.arrivals[i] >= commit_start && log.arrivals[i - 1] <= commit_end) {
      sample.max_gap_s = std::max(sample.max_gap_s, gap);
    } else {
      others.push_back(gap);
    }
  }
  sample.median_gap_s = Median(others);
  ServingRequest again = MakeRequest(s, engine.model_config(), 0, 1);
  const int64_t so_far = static_cast<int64_t>(log.arrivals.size());
  for (int64_t i = 0; i < s.commit_tokens && i < so_far; ++i) {
    again.generation.prompt_ids.push_back(static_cast<int32_t>((i * 131 + 7) % 1000));
  }
  const auto prefill_start = Clock::now();
  LOOM_ASSIGN_OR_RETURN(std::shared_ptr<RequestStream> prefill, engine.Submit(again));
  StreamLog prefill_log;
  ReadStream(*prefill, prefill_log);
  LOOM_RETURN_IF_ERROR(prefill_log.error);
  sample.reprefill_s = Seconds(prefill_start, Clock::now());
  return sample;
}

struct DecodeSample {
  double tokens_per_s = 0;
  int64_t stages = 0;  // stage_weights calls completed while the streams ran
  std::vector<double> stage_s;  // each of those stages, slowest rank's load seconds
};

// The load seconds (slowest rank) of a stage_weights call.
double StageSeconds(const std::vector<RankResult>& results) {
  double load = 0;
  for (const RankResult& r : results) load = std::max(load, r.result.value("seconds", 0.0));
  return load;
}

// A stage on the idle engine that replaces a staged set (so it writes buffers written before,
// as the stages of MeasureDecode after their first do); its load seconds.
absl::StatusOr<double> IdleStageSeconds(const Settings& s, ServingEngine& engine) {
  LOOM_RETURN_IF_ERROR(engine.CollectiveCall("stage_weights", "{}", s.rpc_timeout).status());
  LOOM_ASSIGN_OR_RETURN(std::vector<RankResult> again,
                        engine.CollectiveCall("stage_weights", "{}", s.rpc_timeout));
  LOOM_RETURN_IF_ERROR(
      engine.CollectiveCall("abort_staged_weights", "{}", s.rpc_timeout).status());
  return StageSeconds(again);
}

// `streams` concurrent requests; decode tokens/s once every prompt is in. With `share` > 0, a
// thread loops stage_weights with that load_config.stage_share from before the first Submit until
// the last is done, each stage replacing the one before (then one abort).
absl::StatusOr<DecodeSample> MeasureDecode(const Settings& s, ServingEngine& engine,
                                           double share) {
  const bool staging = share > 0;
  std::vector<double> stage_s;
  const std::string stage_args = json{{"source", {{"stage_share", share}}}}.dump();
  std::atomic<bool> finished{false};
  std::atomic<bool> staging_started{false};
  std::atomic<int64_t> stages{0};
  absl::Status stage_error;
  std::thread stager;
  if (staging) {
    stager = std::thread([&] {
      while (!finished.load()) {
        staging_started = true;
        absl::StatusOr<std::vector<RankResult>> st =
            engine.CollectiveCall("stage_weights", stage_args, s.rpc_timeout);
        if (!st.ok()) {
          stage_error = st.status();
          return;
        }
        if (!finished.load()) {
          ++stages;
          stage_s.push_back(StageSeconds(*st));
        }
      }
      stage_error = engine.CollectiveCall("abort_staged_weights", "{}", s.rpc_timeout).status();
    });
    while (!staging_started.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // let the load begin
  }
  std::vector<std::shared_ptr<RequestStream>> streams;
  std::vector<StreamLog> logs(s.streams);
  const auto start = Clock::now();
  absl::Status submitted;
  for (int64_t i = 0; i < s.streams && submitted.ok(); ++i) {
    absl::StatusOr<std::shared_ptr<RequestStream>> st =
        engine.Submit(MakeRequest(s, engine.model_config(), i + 1, s.new_tokens));
    if (st.ok()) {
      streams.push_back(*st);
    } else {
      submitted = st.status();
    }
  }
  std::vector<std::thread> readers;
  for (size_t i = 0; i < streams.size(); ++i) {
    readers.emplace_back([&, i] { ReadStream(*streams[i], logs[i]); });
  }
  for (std::thread& t : readers) t.join();
  finished = true;
  if (stager.joinable()) stager.join();
  LOOM_RETURN_IF_ERROR(submitted);
  LOOM_RETURN_IF_ERROR(stage_error);
  // Decode only: from the moment every stream has its first token (the prompts are in) to the
  // last token, counting the tokens that arrived in between.
  Clock::time_point first = start, last = start;
  for (const StreamLog& log : logs) {
    LOOM_RETURN_IF_ERROR(log.error);
    if (log.arrivals.empty()) return absl::InternalError("a decode stream produced no tokens");
    first = std::max(first, log.arrivals.front());
    last = std::max(last, log.arrivals.back());
  }
  int64_t tokens = 0;
  for (const StreamLog& log : logs) {
    for (size_t k = 0; k < log.arrivals.size(); ++k) {
      if (log.arrivals[k] > first) tokens += log.tokens[k];
    }
  }
  DecodeSample sample;
  sample.tokens_per_s = Ratio(static_cast<double>(tokens), Seconds(first, last));
  sample.stages = stages.load();
  sample.stage_s = stage_s;
  return sample;
}

// ---- one TP size ------------------------------------------------------------------------------

struct TpResult {
  int tp = 0;
  std::vector<ReadyRow> ready;  // dummy, auto, sharded_state, auto+broadcast
  std::vector<double> cat_auto_s, cat_sharded_s;
  std::vector<double> fresh_auto_s, fresh_sharded_s;  // FreshReadSeconds with tp threads
  FileSet auto_files, sharded_files;
  ReloadRow staged, in_place;
  std::vector<CommitSample> commits;
  ReloadRow double_buffered;
  std::vector<DecodeSample> idle;
  std::vector<std::vector<DecodeSample>> busy;  // per s.shares
  std::vector<double> idle_stage_s;
};

absl::StatusOr<TpResult> RunTp(const Settings& s, int tp, const fs::path& temp) {
  TpResult out;
  out.tp = tp;
  const fs::path sharded_dir = temp / absl::StrCat("sharded-tp", tp);
  LOOM_ASSIGN_OR_RETURN(out.auto_files, Safetensors(s.config.load.model));
  LOOM_RETURN_IF_ERROR(CatSeconds(out.auto_files).status());  // warm the page cache

  // The sharded state at this TP, from an engine that loaded the checkpoint.
  Progress(absl::StrCat("TP=", tp, ": saving a sharded state"));
  {
    LOOM_ASSIGN_OR_RETURN(std::unique_ptr<ServingEngine> engine, StartEngine(s, s.config, tp));
    const json args = {{"path", sharded_dir.string()}, {"max_file_size", 0}};
    LOOM_RETURN_IF_ERROR(
        engine->CollectiveCall("save_sharded_state", args.dump(), s.rpc_timeout).status());
    engine->Stop();
  }
  LOOM_ASSIGN_OR_RETURN(out.sharded_files, Safetensors(sharded_dir));
  LOOM_RETURN_IF_ERROR(CatSeconds(out.sharded_files).status());

  std::vector<EngineConfig> configs(4, s.config);
  configs[0].load.load_format = "dummy";
  configs[2].load.model = sharded_dir.string();
  configs[2].load.load_format = "sharded_state";
  configs[3].load.strategy = "broadcast";
  out.ready.resize(configs.size());
  const char* names[] = {"dummy", "auto", "sharded_state", "auto+broadcast"};
  for (size_t i = 0; i < configs.size(); ++i) out.ready[i].name = names[i];
  for (int64_t rep = 0; rep < s.repeats; ++rep) {  // formats interleaved, against drift
    Progress(absl::StrCat("TP=", tp, ": time to ready, round ", rep + 1, "/", s.repeats));
    for (size_t i = 0; i < configs.size(); ++i) {
      LOOM_RETURN_IF_ERROR(TimeStart(s, configs[i], tp, out.ready[i]));
    }
    LOOM_ASSIGN_OR_RETURN(double a, CatSeconds(out.auto_files));
    LOOM_ASSIGN_OR_RETURN(double b, CatSeconds(out.sharded_files));
    out.cat_auto_s.push_back(a);
    out.cat_sharded_s.push_back(b);
    LOOM_ASSIGN_OR_RETURN(double fa, FreshReadSeconds(out.auto_files, tp));
    LOOM_ASSIGN_OR_RETURN(double fb, FreshReadSeconds(out.sharded_files, tp));
    out.fresh_auto_s.push_back(fa);
    out.fresh_sharded_s.push_back(fb);
  }

  EngineConfig serve = s.config;
  serve.cache.kv_cache_bytes = s.serve_kv_bytes;
  serve.scheduler.max_num_seqs = std::max<int64_t>(serve.scheduler.max_num_seqs, s.streams);
  LOOM_ASSIGN_OR_RETURN(std::unique_ptr<ServingEngine> engine, StartEngine(s, serve, tp));
  for (int64_t rep = 0; rep < s.repeats; ++rep) {
    Progress(absl::StrCat("TP=", tp, ": reload_weights, round ", rep + 1, "/", s.repeats));
    LOOM_RETURN_IF_ERROR(TimeReload(s, *engine, "staged", out.staged));
    LOOM_RETURN_IF_ERROR(TimeReload(s, *engine, "in_place", out.in_place));
  }
  Progress(absl::StrCat("TP=", tp, ": double-buffered stages"));
  LOOM_RETURN_IF_ERROR(TimeDoubleBuffered(s, *engine, s.repeats, out.double_buffered));
  for (int64_t rep = 0; rep < s.repeats; ++rep) {
    Progress(absl::StrCat("TP=", tp, ": commit pause, round ", rep + 1, "/", s.repeats));
    LOOM_ASSIGN_OR_RETURN(CommitSample c, MeasureCommit(s, *engine));
    out.commits.push_back(c);
  }
  for (int64_t rep = 0; rep < s.repeats; ++rep) {
    Progress(absl::StrCat("TP=", tp, ": decode idle / while staging, round ", rep + 1, "/",
                          s.repeats));
    LOOM_ASSIGN_OR_RETURN(DecodeSample idle, MeasureDecode(s, *engine, 0));
    out.idle.push_back(idle);
    LOOM_ASSIGN_OR_RETURN(double idle_stage, IdleStageSeconds(s, *engine));
    out.idle_stage_s.push_back(idle_stage);
    out.busy.resize(s.shares.size());
    for (size_t k = 0; k < s.shares.size(); ++k) {
      LOOM_ASSIGN_OR_RETURN(DecodeSample busy, MeasureDecode(s, *engine, s.shares[k]));
      out.busy[k].push_back(busy);
    }
  }
  engine->Stop();
  std::error_code ec;
  fs::remove_all(sharded_dir, ec);
  return out;
}

// ---- tables -------------------------------------------------------------------------------------

template <typename T, typename F>
std::vector<double> Map(const std::vector<T>& v, F f) {
  std::vector<double> out;
  for (const T& x : v) out.push_back(f(x));
  return out;
}

void PrintTables(const std::vector<TpResult>& results) {
  std::printf("\n### 1. Time to ready (ServingEngine::Start), page cache warm\n\n");
  std::printf("| TP | load format | ready s | min s | max s | vs dummy | vs auto |\n");
  std::printf("|---|---|---|---|---|---|---|\n");
  for (const TpResult& r : results) {
    const double dummy = Median(r.ready[0].ready_s), autos = Median(r.ready[1].ready_s);
    for (const ReadyRow& row : r.ready) {
      const double m = Median(row.ready_s);
      std::printf("| %d | %s | %.3f | %.3f | %.3f | %.2f | %.2f |\n", r.tp, row.name.c_str(), m,
                  *std::min_element(row.ready_s.begin(), row.ready_s.end()),
                  *std::max_element(row.ready_s.begin(), row.ready_s.end()), Ratio(m, dummy),
                  Ratio(m, autos));
    }
  }

  std::printf("\n### 2. Load throughput (bytes read summed over ranks / slowest rank's load "
              "seconds) vs `cat FILES > /dev/null`\n\n");
  std::printf("| TP | load format | MB read | MB received | load s | GB/s | files MB | cat s | "
              "cat GB/s | vs cat | fresh-buffer read s (TP threads) | vs fresh read |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|---|---|---|\n");
  for (const TpResult& r : results) {
    for (size_t i : {size_t{1}, size_t{2}, size_t{3}}) {
      const ReadyRow& row = r.ready[i];
      const FileSet& files = i == 2 ? r.sharded_files : r.auto_files;
      const double cat_s = Median(i == 2 ? r.cat_sharded_s : r.cat_auto_s);
      const double read = Median(row.bytes_read), load = Median(row.load_s);
      std::vector<double> rates;
      for (size_t k = 0; k < row.load_s.size(); ++k) {
        rates.push_back(Ratio(row.bytes_read[k], row.load_s[k]) / 1e9);
      }
      const double rate = Median(rates);
      const double cat_rate = Ratio(static_cast<double>(files.bytes), cat_s) / 1e9;
      const double fresh_s = Median(i == 2 ? r.fresh_sharded_s : r.fresh_auto_s);
      std::printf("| %d | %s | %.1f | %.1f | %.3f | %.2f | %.1f | %.3f | %.2f | %.2f | %.3f | "
                  "%.2f |\n",
                  r.tp, row.name.c_str(), read / 1e6, Median(row.bytes_received) / 1e6, load,
                  rate, files.bytes / 1e6, cat_s, cat_rate, Ratio(rate, cat_rate), fresh_s,
                  Ratio(fresh_s, load));
    }
  }

  std::printf("\n### 3. reload_weights (wall time of the call; load s and GB/s from the slowest "
              "rank's report)\n\n");
  std::printf("| TP | mode | wall s | min s | max s | load s | GB/s | vs initial auto load | "
              "vs auto ready |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|\n");
  for (const TpResult& r : results) {
    const double initial = Median(r.ready[1].load_s), ready = Median(r.ready[1].ready_s);
    for (const auto& [name, row] :
         std::vector<std::pair<const char*, const ReloadRow*>>{
             {"staged", &r.staged},
             {"in_place", &r.in_place},
             {"stage_weights {release_previous} after a commit {keep_previous}",
              &r.double_buffered}}) {
      const double wall = Median(row->wall_s), load = Median(row->load_s);
      std::printf("| %d | %s (ran %s) | %.3f | %.3f | %.3f | %.3f | %.2f | %.2f | %.2f |\n", r.tp,
                  name, row->mode_ran.c_str(), wall,
                  *std::min_element(row->wall_s.begin(), row->wall_s.end()),
                  *std::max_element(row->wall_s.begin(), row->wall_s.end()), load,
                  Ratio(Median(row->bytes_read), load) / 1e9, Ratio(wall, initial),
                  Ratio(wall, ready));
    }
  }

  std::printf("\n### 4. Commit pause of a staged swap (stage_weights, then commit_weights)\n\n");
  std::printf("| TP | commit ms, idle | max switch ms, idle | commit ms, decoding | "
              "max switch ms, decoding | largest token gap around commit ms | median token gap "
              "ms (a step) | re-prefill ms | gap − step − re-prefill ms |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|\n");
  for (const TpResult& r : results) {
    const auto& c = r.commits;
    const double gap = Median(Map(c, [](const CommitSample& x) { return x.max_gap_s; }));
    const double med = Median(Map(c, [](const CommitSample& x) { return x.median_gap_s; }));
    const double prefill = Median(Map(c, [](const CommitSample& x) { return x.reprefill_s; }));
    std::printf("| %d | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f |\n", r.tp,
                1e3 * Median(Map(c, [](const CommitSample& x) { return x.idle_commit_s; })),
                1e3 * Median(Map(c, [](const CommitSample& x) { return x.idle_switch_s; })),
                1e3 * Median(Map(c, [](const CommitSample& x) { return x.busy_commit_s; })),
                1e3 * Median(Map(c, [](const CommitSample& x) { return x.busy_switch_s; })),
                1e3 * gap, 1e3 * med, 1e3 * prefill, 1e3 * (gap - med - prefill));
  }
  std::printf("\nMemory of a stage (the rank that peaked highest): RSS before (the serving set, "
              "its KV cache and the process), the peak while staging, and one weight set.\n\n");
  std::printf("| TP | RSS before GB | peak GB | weight set GB | peak − before, in sets |\n");
  std::printf("|---|---|---|---|---|\n");
  for (const TpResult& r : results) {
    const auto& c = r.commits;
    const double before = Median(Map(c, [](const CommitSample& x) { return x.rss_before; }));
    const double peak = Median(Map(c, [](const CommitSample& x) { return x.peak_rss; }));
    const double set = Median(Map(c, [](const CommitSample& x) { return x.weight_bytes; }));
    std::printf("| %d | %.2f | %.2f | %.2f | %.2f |\n", r.tp, before / 1e9, peak / 1e9,
                set / 1e9, Ratio(peak - before, set));
  }
}

void PrintDecodeTable(const std::vector<TpResult>& results, const Settings& s) {
  std::printf("\n### 5. Decode while staging: %lld streams x %lld new tokens (prompt %lld ids, "
              "ignore_eos); tokens/s from the last stream's first token to the last token\n\n",
              static_cast<long long>(s.streams), static_cast<long long>(s.new_tokens),
              static_cast<long long>(s.prompt_len));
  std::printf("Each stage replaces the one before it (so after the first it writes buffers "
              "written before); stage s is its load seconds (slowest rank), against the same kind "
              "of stage on the idle engine.\n\n");
  std::printf("| TP | stage_share | idle tok/s | while staging tok/s | staging / idle | stages "
              "completed | stage s while decoding | idle stage s | stage slow-down |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|\n");
  for (const TpResult& r : results) {
    const double idle = Median(Map(r.idle, [](const DecodeSample& x) { return x.tokens_per_s; }));
    const double idle_stage = Median(r.idle_stage_s);
    for (size_t k = 0; k < r.busy.size(); ++k) {
      const auto& runs = r.busy[k];
      const double busy = Median(Map(runs, [](const DecodeSample& x) { return x.tokens_per_s; }));
      const double stages =
          Median(Map(runs, [](const DecodeSample& x) { return static_cast<double>(x.stages); }));
      std::vector<double> each;
      for (const DecodeSample& x : runs) each.insert(each.end(), x.stage_s.begin(), x.stage_s.end());
      const double stage = each.empty() ? 0 : Median(each);
      std::printf("| %d | %.2f | %.2f | %.2f | %.2f | %.1f | %.3f | %.3f | %.2f |\n", r.tp,
                  s.shares[k], idle, busy, Ratio(busy, idle), stages, stage, idle_stage,
                  Ratio(stage, idle_stage));
    }
  }
}

absl::Status Run(const Flags& flags) {
  Settings s;
  LOOM_ASSIGN_OR_RETURN(std::vector<int64_t> tps, ParseIntList(flags.String("tp", "1,2"), "--tp"));
  LOOM_ASSIGN_OR_RETURN(s.repeats, flags.Int("repeats", 3));
  LOOM_ASSIGN_OR_RETURN(s.serve_kv_bytes, flags.Bytes("serve-kv-cache-memory", s.serve_kv_bytes));
  LOOM_ASSIGN_OR_RETURN(s.streams, flags.Int("streams", s.streams));
  LOOM_ASSIGN_OR_RETURN(s.new_tokens, flags.Int("new-tokens", s.new_tokens));
  LOOM_ASSIGN_OR_RETURN(s.prompt_len, flags.Int("prompt-len", s.prompt_len));
  LOOM_ASSIGN_OR_RETURN(s.commit_tokens, flags.Int("commit-tokens", s.commit_tokens));
  if (flags.Has("stage-shares")) {
    s.shares.clear();
    for (absl::string_view part : absl::StrSplit(flags.String("stage-shares"), ',')) {
      double share = 0;
      if (!absl::SimpleAtod(part, &share) || !(share > 0) || share > 1) {
        return absl::InvalidArgumentError(absl::StrCat(
            "--stage-shares: \"", part, "\" is not a share in (0, 1]"));
      }
      s.shares.push_back(share);
    }
  }
  LOOM_ASSIGN_OR_RETURN(int64_t timeout_s, flags.Int("rpc-timeout", 600));
  s.rpc_timeout = std::chrono::seconds(timeout_s);
  for (int64_t tp : tps) {
    if (tp < 1 || tp > 64) return absl::InvalidArgumentError("--tp sizes must be in [1, 64]");
  }
  if (s.repeats < 1 || s.streams < 1 || s.new_tokens < 3 || s.prompt_len < 1 ||
      s.commit_tokens < 2 || timeout_s < 1) {
    return absl::InvalidArgumentError(
        "--repeats, --streams, --prompt-len and --rpc-timeout must be positive, --new-tokens "
        "at least 3, --commit-tokens at least 2");
  }
  s.worker_binary = flags.String("worker-binary", DefaultWorkerBinary());

  LOOM_ASSIGN_OR_RETURN(TempDir temp, TempDir::Make(flags.Bool("keep-temp")));
  std::string model = flags.String("model");
  if (model.empty()) {
    const fs::path maker = SelfDir() / "loom-make-model";
    const fs::path dir = temp.path() / "model";
    const std::string preset = flags.String("preset", "qwen3-0.6b");
    Progress(absl::StrCat("making a ", preset, " checkpoint in ", dir.string()));
    const std::string command =
        absl::StrCat(ShellQuote(maker.string()), " --preset ", ShellQuote(preset),
                     " --dtype bfloat16 --output ", ShellQuote(dir.string()), " > /dev/null");
    if (std::system(command.c_str()) != 0) {
      return absl::InternalError(absl::StrCat("`", command, "` failed"));
    }
    model = dir.string();
  }
  // EngineConfigFromFlags wants --model; the flags are otherwise the engine's own.
  {
    std::vector<std::string> args = {"loom-bench-weights", "--model", model};
    for (const char* name : {"weight-dtype", "block-size", "max-num-seqs",
                             "max-num-batched-tokens", "max-model-len", "threads",
                             "dummy-seed", "dummy-range"}) {
      if (flags.Has(name)) {
        args.push_back(absl::StrCat("--", name));
        args.push_back(flags.String(name));
      }
    }
    args.push_back("--kv-cache-memory");
    args.push_back(flags.String("kv-cache-memory", "64M"));
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    LOOM_ASSIGN_OR_RETURN(Flags engine_flags,
                          Flags::Parse(static_cast<int>(argv.size()), argv.data(), 1,
                                       EngineFlagSpecs()));
    LOOM_ASSIGN_OR_RETURN(s.config, EngineConfigFromFlags(engine_flags));
  }
  LOOM_ASSIGN_OR_RETURN(ModelConfig mc, ModelConfig::FromModelDir(model));
  LOOM_ASSIGN_OR_RETURN(FileSet files, Safetensors(model));
  LOOM_ASSIGN_OR_RETURN(const DType weight_dtype, ResolveWeightDType(s.config.load, mc));
  std::printf("model %s (%s, %lld layers, hidden %lld, vocab %lld), %.1f MB of safetensors; "
              "%s weights in memory; %u cores; %lld repeats (medians); KV cache %lld MiB for "
              "time to ready, %lld MiB for serving\n",
              model.c_str(), mc.architecture.c_str(), static_cast<long long>(mc.num_hidden_layers),
              static_cast<long long>(mc.hidden_size), static_cast<long long>(mc.vocab_size),
              files.bytes / 1e6, FloatDTypeName(weight_dtype),
              std::thread::hardware_concurrency(), static_cast<long long>(s.repeats),
              static_cast<long long>(s.config.cache.kv_cache_bytes >> 20),
              static_cast<long long>(s.serve_kv_bytes >> 20));
  std::fflush(stdout);

  std::vector<TpResult> results;
  const auto start = Clock::now();
  for (int64_t tp : tps) {
    LOOM_ASSIGN_OR_RETURN(TpResult r, RunTp(s, static_cast<int>(tp), temp.path()));
    results.push_back(std::move(r));
  }
  PrintTables(results);
  PrintDecodeTable(results, s);
  std::printf("\ntotal %.1f s\n", Seconds(start, Clock::now()));
  return absl::OkStatus();
}

std::vector<FlagSpec> Specs() {
  std::vector<FlagSpec> specs;
  for (FlagSpec spec : EngineFlagSpecs()) {
    // The load format and strategy are what this bench varies.
    if (spec.name == "load-format" || spec.name == "load-strategy") continue;
    if (spec.name == "model") {
      spec.help = "HF model directory (default: a qwen3-0.6b-shaped bf16 one in a temp dir)";
      spec.default_value = "";
    }
    if (spec.name == "kv-cache-memory") {
      spec.help = "KV cache of the engines timed to ready (small: startup is about weights)";
      spec.default_value = "64M";
    }
    specs.push_back(spec);
  }
  std::vector<FlagSpec> more = {
      {"tp", false, "TP sizes", "1,2"},
      {"repeats", false, "runs of each measurement (medians are printed)", "3"},
      {"preset", false, "loom-make-model preset made when --model is absent", "qwen3-0.6b"},
      {"serve-kv-cache-memory", false, "KV cache of the engine that reloads and decodes", "256M"},
      {"streams", false, "concurrent streams in the decode measurement", "4"},
      {"new-tokens", false, "tokens each decode stream generates", "48"},
      {"stage-shares", false, "load_config.stage_share values the decode-while-staging rows use",
       "1,0.5,0.25"},
      {"prompt-len", false, "prompt ids per stream", "16"},
      {"commit-tokens", false, "tokens the commit-pause stream gets before and after the commit",
       "10"},
      {"rpc-timeout", false, "deadline of each weight call, in seconds", "600"},
      {"worker-binary", false, "the loom-worker executable", "beside this tool"},
      {"keep-temp", true, "keep the temporary directory (model, sharded states)", ""},
      {"help", true, "show this help", ""},
  };
  specs.insert(specs.end(), more.begin(), more.end());
  return specs;
}

}  // namespace
}  // namespace loom::cli

int main(int argc, char** argv) {
  return loom::cli::RunVerb("loom-bench-weights", argc, argv, loom::cli::Specs(),
                            loom::cli::kUsage, loom::cli::Run, /*first_arg=*/1);
}
