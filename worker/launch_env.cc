#include "worker/launch_env.h"

#include <cstdlib>
#include <limits>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace loom {
namespace {

// A non-negative decimal integer that fits an int, nothing else (no sign, spaces or suffix).
std::optional<int> ParseCount(const std::string& text) {
  if (text.empty() || text.size() > 10) return std::nullopt;
  for (char c : text) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return std::nullopt;
  }
  int64_t value = 0;
  if (!absl::SimpleAtoi(text, &value) || value > std::numeric_limits<int>::max()) {
    return std::nullopt;
  }
  return static_cast<int>(value);
}

absl::StatusOr<int> FromEnv(const char* name, const char* value, const char* what) {
  const std::optional<int> n = ParseCount(value);
  if (!n.has_value()) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, "=\"", value, "\" is not ", what, " (a non-negative integer)"));
  }
  return *n;
}

}  // namespace

absl::StatusOr<RankAndWorld> ResolveRankAndWorld(
    std::optional<int64_t> rank_flag, std::optional<int64_t> world_size_flag,
    const std::function<const char*(const char*)>& getenv_fn) {
  const auto env = [&](const char* name) -> const char* {
    const char* v = getenv_fn ? getenv_fn(name) : std::getenv(name);
    return v != nullptr && *v != '\0' ? v : nullptr;
  };
  const auto in_int_range = [](int64_t v) {
    return v >= std::numeric_limits<int>::min() && v <= std::numeric_limits<int>::max();
  };
  RankAndWorld out;
  if (world_size_flag.has_value()) {
    if (!in_int_range(*world_size_flag)) {
      return absl::InvalidArgumentError(absl::StrCat("--world-size ", *world_size_flag,
                                                     " is out of range"));
    }
    out.world_size = static_cast<int>(*world_size_flag);
    out.world_from = "--world-size";
  } else if (const char* v = env("LOOM_WORLD_SIZE")) {
    auto n = FromEnv("LOOM_WORLD_SIZE", v, "a world size");
    if (!n.ok()) return n.status();
    out.world_size = *n;
    out.world_from = "LOOM_WORLD_SIZE";
  } else if (const char* v = env("SLURM_NTASKS")) {
    auto n = FromEnv("SLURM_NTASKS", v, "a world size");
    if (!n.ok()) return n.status();
    out.world_size = *n;
    out.world_from = "SLURM_NTASKS";
  } else {
    return absl::InvalidArgumentError(
        "--world-size is required (or LOOM_WORLD_SIZE, or SLURM_NTASKS under srun)");
  }

  if (rank_flag.has_value()) {
    if (!in_int_range(*rank_flag)) {
      return absl::InvalidArgumentError(absl::StrCat("--rank ", *rank_flag, " is out of range"));
    }
    out.rank = static_cast<int>(*rank_flag);
    out.rank_from = "--rank";
  } else if (const char* v = env("SLURM_PROCID")) {
    auto n = FromEnv("SLURM_PROCID", v, "a rank");
    if (!n.ok()) return n.status();
    out.rank = *n;
    out.rank_from = "SLURM_PROCID";
  } else if (env("KUBERNETES_SERVICE_HOST") != nullptr && env("HOSTNAME") != nullptr) {
    // A StatefulSet names its pods <set>-0, <set>-1, ...; the pod's HOSTNAME is its name.
    const std::string host = env("HOSTNAME");
    const size_t dash = host.rfind('-');
    const std::optional<int> ordinal =
        dash == std::string::npos ? std::nullopt : ParseCount(host.substr(dash + 1));
    if (!ordinal.has_value()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "no --rank, and HOSTNAME=\"", host,
          "\" has no pod ordinal (a StatefulSet pod is named <set>-<ordinal>)"));
    }
    out.rank = *ordinal;
    out.rank_from = absl::StrCat("the pod ordinal of HOSTNAME=", host);
  } else {
    return absl::InvalidArgumentError(
        "--rank is required (or SLURM_PROCID under srun, or a Kubernetes StatefulSet pod "
        "whose HOSTNAME ends in its ordinal)");
  }

  if (out.world_size < 1 || out.rank < 0 || out.rank >= out.world_size) {
    return absl::InvalidArgumentError(absl::StrCat("rank ", out.rank, " (", out.rank_from,
                                                   ") of world size ", out.world_size, " (",
                                                   out.world_from,
                                                   "): need 0 <= rank < world size"));
  }
  return out;
}

}  // namespace loom
