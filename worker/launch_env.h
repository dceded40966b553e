// Where an outside launcher puts a worker's rank and world size when the command line does not:
// Slurm (SLURM_PROCID, SLURM_NTASKS) and Kubernetes (a StatefulSet pod's ordinal, the trailing
// -N of HOSTNAME, with the world size from LOOM_WORLD_SIZE). docs/deploy.md has the recipes.
//
// Each value is taken from the first source that has it:
//   rank:       --rank, then SLURM_PROCID, then (in a Kubernetes pod, KUBERNETES_SERVICE_HOST
//               set) the pod ordinal of HOSTNAME;
//   world size: --world-size, then LOOM_WORLD_SIZE, then SLURM_NTASKS.
// A source that is present but malformed ("abc", "-1", "2x", out of int range) is an error naming
// it, not a fall-through to the next one; so is a rank outside [0, world size).
#ifndef LOOM_WORKER_LAUNCH_ENV_H_
#define LOOM_WORKER_LAUNCH_ENV_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "absl/status/statusor.h"

namespace loom {

struct RankAndWorld {
  int rank = 0;
  int world_size = 1;
  std::string rank_from;   // "--rank", "SLURM_PROCID", "the pod ordinal of HOSTNAME=web-3"
  std::string world_from;  // "--world-size", "LOOM_WORLD_SIZE", "SLURM_NTASKS"
};

// `getenv` returns a variable's value or nullptr (std::getenv by default; tests pass a map).
absl::StatusOr<RankAndWorld> ResolveRankAndWorld(
    std::optional<int64_t> rank_flag, std::optional<int64_t> world_size_flag,
    const std::function<const char*(const char*)>& getenv = {});

}  // namespace loom

#endif  // LOOM_WORKER_LAUNCH_ENV_H_
