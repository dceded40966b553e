// loom-bench-cluster: what the controller costs. Starts real clusters (loom-worker processes,
// gRPC over Unix sockets, Gloo between ranks) and prints:
//   * the round trip of a no-op collective RPC (check_health) at each TP size, p50 and p99;
//   * decode at batch 1: tokens/s, and the controller's share of a step — step wall time minus
//     the slowest rank's forward-pass time, as a percentage of the wall time.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/flags.h"
#include "common/model_config.h"
#include "common/status.h"
#include "controller/scheduler.h"
#include "controller/supervisor.h"
#include "controller/worker_group.h"
#include "tools/engine_flags.h"

namespace loom::cli {
namespace {

using Clock = std::chrono::steady_clock;

constexpr char kUsage[] =
    "usage: loom-bench-cluster --model DIR [--rpc-tp 1,2,4] [--decode-tp 1,2] [options]\n\n"
    "Prints no-op collective RPC latency (p50/p99) and batch-1 decode throughput with the\n"
    "controller's share of each decode step, on real worker processes.\n";

struct Cluster {
  std::unique_ptr<Supervisor> supervisor;
  std::unique_ptr<WorkerGroup> group;
  int64_t num_kv_blocks = 0;
};

absl::StatusOr<Cluster> Start(const EngineConfig& config, int tp, const Flags& flags) {
  Cluster c;
  SupervisorOptions options;
  options.world_size = tp;
  options.worker_binary = flags.String("worker-binary", LOOM_DEFAULT_WORKER);
  options.threads_per_worker = config.num_threads;
  LOOM_ASSIGN_OR_RETURN(c.supervisor, Supervisor::Start(options));
  WorkerGroupOptions group;
  group.addresses = c.supervisor->worker_addresses();
  Supervisor* s = c.supervisor.get();
  group.rank_status = [s](int rank) { return s->RankStatus(rank); };
  LOOM_ASSIGN_OR_RETURN(c.group, WorkerGroup::Connect(group));
  LOOM_ASSIGN_OR_RETURN(GroupInitResult init, c.group->Init(config));
  c.num_kv_blocks = init.num_kv_blocks;
  return c;
}

double Percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * v.size()))];
}

absl::Status BenchRpc(Cluster& c, int64_t calls) {
  std::vector<double> us;
  for (int64_t i = 0; i < calls + 20; ++i) {
    const auto start = Clock::now();
    LOOM_RETURN_IF_ERROR(
        c.group->CollectiveCall("check_health", "", std::chrono::seconds(10)).status());
    if (i >= 20)
      us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - start).count());
  }
  std::printf("  no-op collective RPC: p50 %.0f us, p99 %.0f us (%lld calls)\n",
              Percentile(us, 0.5), Percentile(us, 0.99), static_cast<long long>(calls));
  return absl::OkStatus();
}

absl::Status BenchDecode(Cluster& c, const EngineConfig& config, int64_t tokens) {
  LOOM_ASSIGN_OR_RETURN(ModelConfig model, ModelConfig::FromModelDir(config.load.model));
  Scheduler scheduler(config.scheduler, model.MaxContextLength(), c.num_kv_blocks,
                      config.cache.block_size, {});
  GenerationRequest request;
  for (int i = 0; i < 16; ++i) request.prompt_ids.push_back((i * 37 + 11) % model.vocab_size);
  request.max_tokens = tokens + 1;
  request.ignore_eos = true;
  LOOM_RETURN_IF_ERROR(scheduler.Add(request).status());
  double wall = 0, compute = 0;
  int64_t steps = 0;
  bool prefilled = false;
  while (scheduler.HasWork()) {
    StepInput step = scheduler.Schedule();
    const auto start = Clock::now();
    LOOM_ASSIGN_OR_RETURN(StepOutput out, c.group->Step(step));
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    scheduler.Update(step, out);
    if (!prefilled) {  // the prompt step is not a decode step
      prefilled = true;
      continue;
    }
    wall += seconds;
    compute += c.group->last_step_compute_seconds();
    ++steps;
  }
  std::printf("  decode, batch 1: %.1f tok/s, step %.2f ms, controller share %.1f%% (%lld steps)\n",
              steps / wall, 1e3 * wall / steps, 100.0 * (wall - compute) / wall,
              static_cast<long long>(steps));
  return absl::OkStatus();
}

absl::Status Run(const Flags& flags) {
  LOOM_ASSIGN_OR_RETURN(EngineConfig config, EngineConfigFromFlags(flags));
  LOOM_ASSIGN_OR_RETURN(std::vector<int64_t> rpc_tp,
                        ParseIntList(flags.String("rpc-tp", "1,2,4"), "--rpc-tp"));
  LOOM_ASSIGN_OR_RETURN(std::vector<int64_t> decode_tp,
                        ParseIntList(flags.String("decode-tp", "1,2"), "--decode-tp"));
  LOOM_ASSIGN_OR_RETURN(int64_t calls, flags.Int("calls", 500));
  LOOM_ASSIGN_OR_RETURN(int64_t tokens, flags.Int("decode-tokens", 32));
  if (calls <= 0 || tokens <= 0) {
    return absl::InvalidArgumentError("--calls and --decode-tokens must be positive");
  }
  std::set<int64_t> sizes(rpc_tp.begin(), rpc_tp.end());
  sizes.insert(decode_tp.begin(), decode_tp.end());
  std::printf("model %s, %s weights, %u cores\n", config.load.model.c_str(),
              config.load.weight_dtype ? FloatDTypeName(*config.load.weight_dtype) : "auto", std::thread::hardware_concurrency());
  for (int64_t tp : sizes) {
    std::printf("TP=%lld\n", static_cast<long long>(tp));
    absl::StatusOr<Cluster> cluster = Start(config, static_cast<int>(tp), flags);
    if (!cluster.ok()) {
      std::printf("  n/a: %s\n", std::string(cluster.status().message()).c_str());
      continue;
    }
    if (std::count(rpc_tp.begin(), rpc_tp.end(), tp))
      LOOM_RETURN_IF_ERROR(BenchRpc(*cluster, calls));
    if (std::count(decode_tp.begin(), decode_tp.end(), tp)) {
      LOOM_RETURN_IF_ERROR(BenchDecode(*cluster, config, tokens));
    }
    std::fflush(stdout);
  }
  return absl::OkStatus();
}

std::vector<FlagSpec> Specs() {
  std::vector<FlagSpec> specs = EngineFlagSpecs();
  std::vector<FlagSpec> more = {
      {"rpc-tp", false, "TP sizes for the RPC round trip", "1,2,4"},
      {"decode-tp", false, "TP sizes for decode", "1,2"},
      {"calls", false, "RPC round trips measured per TP size", "500"},
      {"decode-tokens", false, "decode steps measured", "32"},
      {"worker-binary", false, "the loom-worker executable", LOOM_DEFAULT_WORKER},
      {"help", true, "show this help", ""},
  };
  specs.insert(specs.end(), more.begin(), more.end());
  return specs;
}

}  // namespace
}  // namespace loom::cli

int main(int argc, char** argv) {
  return loom::cli::RunVerb("loom-bench-cluster", argc, argv, loom::cli::Specs(), loom::cli::kUsage,
                            loom::cli::Run, /*first_arg=*/1);
}
