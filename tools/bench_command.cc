// `loom bench`: prefill and decode throughput of a model on the serving engine (its rank in this
// process), next to the machine's measured memory bandwidth (decode is bound by reading the
// weights once per step).
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <random>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "absl/synchronization/mutex.h"
#include "controller/in_process_executor.h"
#include "controller/serving_engine.h"
#include "kernels/cpu/cpu_isa.h"
#include "kernels/threading.h"
#include "tools/bench_stats.h"
#include "tools/commands.h"
#include "tools/engine_flags.h"

namespace loom::cli {
namespace {

using Clock = std::chrono::steady_clock;

struct Bandwidth {
  double memcpy_gbs = 0;  // bytes copied per second (each byte is read once and written once)
  double read_gbs = 0;    // bytes read per second by a streaming sum
};

// Sums a float array with 16 independent accumulators so the loop is bound by memory, not by
// the latency of one add chain.
// `n` is a multiple of 16.
float StreamingSum(const float* p, int64_t n) {
  float acc[16] = {};
  for (int64_t i = 0; i < n / 16; ++i) {
    for (int j = 0; j < 16; ++j) acc[j] += p[i * 16 + j];
  }
  float s = 0;
  for (float a : acc) s += a;
  return s;
}

// Median over repeats of a 512 MiB copy and a read-only sweep, on all kernel threads.
Bandwidth MeasureBandwidth() {
  const int64_t n = (int64_t{512} << 20) / sizeof(float);
  const int64_t chunks = 64, chunk = n / chunks;
  std::vector<float> a(n, 1.0f), b(n, 0.0f);
  std::vector<double> copy, read;
  for (int rep = 0; rep < 5; ++rep) {
    auto t0 = Clock::now();
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < chunks; ++c) {
      std::memcpy(b.data() + c * chunk, a.data() + c * chunk, chunk * sizeof(float));
    }
    auto t1 = Clock::now();
    float sum = 0;
#pragma omp parallel for reduction(+ : sum) schedule(static)
    for (int64_t c = 0; c < chunks; ++c) sum += StreamingSum(b.data() + c * chunk, chunk);
    auto t2 = Clock::now();
    if (sum < 0) std::printf(" ");  // keeps the sweep from being optimised away
    copy.push_back(1.0 * n * sizeof(float) / Seconds(t0, t1) / 1e9);
    read.push_back(1.0 * n * sizeof(float) / Seconds(t1, t2) / 1e9);
  }
  return {Median(copy), Median(read)};
}

struct BatchResult {
  int64_t batch = 0;
  double prefill_tokens_per_s = 0;
  double decode_tokens_per_s = 0;
  double decode_step_ms = 0;
  int64_t prefill_computed = 0;  // prompt tokens the steps computed (the rest came cached)
  double prefill_s = 0;          // steps with prompt tokens: when the last request's first token came
};

// The steps the engine reports (ServingEngineOptions::on_step), gathered for one batch.
class StepLog {
 public:
  void Add(const StepStats& s) {
    absl::MutexLock lock(&mu_);
    steps_.push_back(s);
  }
  std::vector<StepStats> Take() {
    absl::MutexLock lock(&mu_);
    return std::exchange(steps_, {});
  }

 private:
  absl::Mutex mu_;
  std::vector<StepStats> steps_ ABSL_GUARDED_BY(mu_);
};

// One batch through the serving engine: every request submitted at once, so they prefill and
// decode together; step times are the engine's own (the loop `loom serve` runs).
absl::StatusOr<BatchResult> RunBatch(ServingEngine& engine, StepLog& log, int64_t batch,
                                     int64_t prompt_len, int64_t new_tokens, uint64_t seed,
                                     const std::vector<int32_t>& shared_prefix) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int32_t> token(0, engine.model_config().vocab_size - 1);
  std::vector<std::shared_ptr<RequestStream>> streams;
  log.Take();
  for (int64_t b = 0; b < batch; ++b) {
    ServingRequest r;
    r.generation.prompt_ids = shared_prefix;
    while (static_cast<int64_t>(r.generation.prompt_ids.size()) < prompt_len) {
      r.generation.prompt_ids.push_back(token(rng));
    }
    r.generation.max_tokens = new_tokens;
    r.generation.ignore_eos = true;
    LOOM_ASSIGN_OR_RETURN(std::shared_ptr<RequestStream> stream, engine.Submit(std::move(r)));
    streams.push_back(std::move(stream));
  }
  for (const auto& stream : streams) LOOM_RETURN_IF_ERROR(WaitForCompletion(*stream).status());
  std::vector<double> decode_steps;
  double prefill_s = 0;
  int64_t prefill_tokens = 0;
  for (const StepStats& s : log.Take()) {
    if (s.num_prefill_tokens > 0) {
      prefill_s += s.seconds;
      prefill_tokens += s.num_tokens;
    } else if (s.num_sequences == batch) {
      decode_steps.push_back(s.seconds);
    }
  }
  BatchResult r;
  r.batch = batch;
  r.prefill_tokens_per_s = prefill_s > 0 ? prefill_tokens / prefill_s : 0;
  r.prefill_s = prefill_s;
  r.prefill_computed = prefill_tokens;
  r.decode_step_ms = Median(decode_steps) * 1e3;
  r.decode_tokens_per_s = r.decode_step_ms > 0 ? batch / (r.decode_step_ms / 1e3) : 0;
  return r;
}

std::vector<FlagSpec> BenchFlagSpecs() {
  std::vector<FlagSpec> specs = EngineFlagSpecs();
  std::vector<FlagSpec> more = {
      {"batch", false, "comma-separated batch sizes", "1,8,32"},
      {"prompt-len", false, "prompt tokens per sequence", "128"},
      {"new-tokens", false, "generated tokens per sequence", "128"},
      {"shared-prefix", false,
       "leading prompt tokens every request shares (a system prompt: what prefix caching saves)",
       "0"},
      {"device", false, "where the model runs: cpu, cuda or cuda:K", "cpu"},
      {"help", true, "show this help", ""},
  };
  specs.insert(specs.end(), more.begin(), more.end());
  return specs;
}

absl::Status Run(const Flags& flags) {
  LOOM_ASSIGN_OR_RETURN(EngineConfig config, EngineConfigFromFlags(flags));
  LOOM_ASSIGN_OR_RETURN(std::vector<int64_t> batches,
                        ParseIntList(flags.String("batch", "1,8,32"), "--batch"));
  LOOM_ASSIGN_OR_RETURN(int64_t prompt_len, flags.Int("prompt-len", 128));
  LOOM_ASSIGN_OR_RETURN(int64_t new_tokens, flags.Int("new-tokens", 128));
  LOOM_ASSIGN_OR_RETURN(int64_t shared, flags.Int("shared-prefix", 0));
  if (shared < 0 || shared >= prompt_len) {
    return absl::InvalidArgumentError("--shared-prefix must be in [0, --prompt-len)");
  }
  int64_t max_batch = 1;
  for (int64_t b : batches) {
    if (b < 1) return absl::InvalidArgumentError("--batch sizes must be >= 1");
    max_batch = std::max(max_batch, b);
  }
  if (prompt_len < 1 || new_tokens < 2) {
    return absl::InvalidArgumentError("--prompt-len must be >= 1 and --new-tokens >= 2");
  }
  config.scheduler.max_num_seqs = std::max(config.scheduler.max_num_seqs, max_batch);
  StepLog log;
  ServingEngineOptions options;
  options.config = config;
  InProcessOptions in_process;
  in_process.device = flags.String("device", "cpu");
  options.on_step = [&log](const StepStats& s) { log.Add(s); };
  const auto load_start = Clock::now();
  LOOM_ASSIGN_OR_RETURN(std::unique_ptr<ServingEngine> engine, StartInProcessEngine(options, in_process));
  const double load_s = Seconds(load_start, Clock::now());
  LOOM_ASSIGN_OR_RETURN(std::vector<RankResult> described,
                        engine->CollectiveCall("describe", "{}", std::chrono::seconds(10)));
  const nlohmann::json& d = described[0].result;
  const double weight_gb = d.value("weight_bytes", int64_t{0}) / 1e9;
  std::printf("model: %s, %lld layers, hidden %lld, vocab %lld; weights %.3f GB as %s; "
              "%lld threads; start and load %.2f s\n",
              engine->model_config().architecture.c_str(),
              static_cast<long long>(engine->model_config().num_hidden_layers),
              static_cast<long long>(engine->model_config().hidden_size),
              static_cast<long long>(engine->model_config().vocab_size), weight_gb,
              d.value("weight_dtype", "").c_str(),
              static_cast<long long>(d.value("num_threads", int64_t{0})), load_s);
  Bandwidth bw;  // off the step thread, whose OpenMP pool must stay the only one (threading.h)
  kernels::RunOnShortLivedThread([&bw] { bw = MeasureBandwidth(); });
  std::printf("machine: memcpy %.2f GB/s copied (%.2f GB/s read+write), streaming read %.2f GB/s; "
              "CPU kernels %s\n\n",
              bw.memcpy_gbs, 2 * bw.memcpy_gbs, bw.read_gbs,
              kernels::CpuIsaName(kernels::ActiveIsa()));
  std::vector<int32_t> prefix;
  {
    std::mt19937_64 rng(99);
    std::uniform_int_distribution<int32_t> token(0, engine->model_config().vocab_size - 1);
    for (int64_t i = 0; i < shared; ++i) prefix.push_back(token(rng));
  }
  std::printf("| batch | prompt | new | prefill tok/s | prompt tokens computed | prefill s | "
              "decode tok/s | decode step ms | weight GB/s | vs memcpy | vs read |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|---|---|\n");
  for (size_t i = 0; i < batches.size(); ++i) {
    LOOM_ASSIGN_OR_RETURN(BatchResult r,
                          RunBatch(*engine, log, batches[i], prompt_len, new_tokens, 1234 + i,
                                   prefix));
    const double gbs = r.decode_step_ms > 0 ? weight_gb / (r.decode_step_ms / 1e3) : 0;
    std::printf("| %lld | %lld | %lld | %.1f | %lld | %.3f | %.2f | %.1f | %.2f | %.2f | %.2f |\n",
                static_cast<long long>(r.batch), static_cast<long long>(prompt_len),
                static_cast<long long>(new_tokens), r.prefill_tokens_per_s,
                static_cast<long long>(r.prefill_computed), r.prefill_s,
                r.decode_tokens_per_s, r.decode_step_ms, gbs, gbs / bw.memcpy_gbs,
                gbs / bw.read_gbs);
    std::fflush(stdout);
  }
  return absl::OkStatus();
}

}  // namespace

int BenchCommand(int argc, char** argv) {
  return RunVerb("bench", argc, argv, BenchFlagSpecs(), 
                 "usage: loom bench --model DIR [--batch 1,8,32] [--prompt-len 128] "
                 "[--new-tokens 128]\n\n"
                 "Runs each batch of random prompts to completion and prints prefill and decode\n"
                 "throughput, and the weight bytes read per decode step per second next to the\n"
                 "machine's measured memcpy and read bandwidth. Make a Qwen3-0.6B-shaped model\n"
                 "with `loom-make-model --preset qwen3-0.6b --output DIR`.\n", Run);
}

}  // namespace loom::cli
