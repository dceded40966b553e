// Runs a piece of a test as N real processes, one per tensor-parallel rank.
//
// The parent re-executes this test binary once per rank (fork + exec at once, so no thread pool
// of the parent, OpenMP's included, is inherited half-alive), selecting the disabled test
// RankProcess.DISABLED_Main, which runs the registered role for its rank and exits. Children get
// one OpenMP thread, die with the parent (PR_SET_PDEATHSIG), are killed as soon as one of them
// fails or the deadline passes, and are always reaped: no orphans.
#ifndef LOOM_TESTS_WORKER_RANK_PROCESSES_H_
#define LOOM_TESTS_WORKER_RANK_PROCESSES_H_

#include <chrono>
#include <functional>
#include <map>
#include <string>

#include "absl/status/status.h"

namespace loom::testing {

struct RankContext {
  int rank = 0;
  int world_size = 1;
  std::string dir;                          // a directory shared by the ranks of this run
  std::map<std::string, std::string> args;  // from RunRanks (no ";" anywhere, no "=" in keys)
};

using RankRole = std::function<absl::Status(const RankContext&)>;

// Registers `role` under `name` at static-initialisation time:
//   const bool kRegistered = RegisterRankRole("allreduce", [](const RankContext& c) { ... });
bool RegisterRankRole(const std::string& name, RankRole role);

// Runs role `name` in `world_size` processes with a fresh shared directory (also handed back in
// `*dir` when not null). OK when every rank returned OK; otherwise the error names the first
// failing rank with the tail of its output.
absl::Status RunRanks(const std::string& name, int world_size,
                      const std::map<std::string, std::string>& args,
                      std::chrono::milliseconds timeout, std::string* dir = nullptr);

}  // namespace loom::testing

#endif  // LOOM_TESTS_WORKER_RANK_PROCESSES_H_
