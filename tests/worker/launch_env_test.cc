#include "worker/launch_env.h"

#include <gtest/gtest.h>

#include <map>
#include <string>

namespace loom {
namespace {

using Env = std::map<std::string, std::string>;

absl::StatusOr<RankAndWorld> Resolve(std::optional<int64_t> rank, std::optional<int64_t> world,
                                     const Env& env) {
  return ResolveRankAndWorld(rank, world, [&env](const char* name) -> const char* {
    auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  });
}

std::string Error(const absl::StatusOr<RankAndWorld>& r) {
  EXPECT_FALSE(r.ok());
  return r.ok() ? "" : std::string(r.status().message());
}

TEST(LaunchEnvTest, FlagsWinOverEveryEnvironment) {
  auto r = Resolve(1, 2, {{"SLURM_PROCID", "3"}, {"SLURM_NTASKS", "8"}, {"LOOM_WORLD_SIZE", "4"}});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->rank, 1);
  EXPECT_EQ(r->world_size, 2);
  EXPECT_EQ(r->rank_from, "--rank");
}

TEST(LaunchEnvTest, SlurmGivesRankAndWorldSize) {
  auto r = Resolve(std::nullopt, std::nullopt, {{"SLURM_PROCID", "3"}, {"SLURM_NTASKS", "4"}});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->rank, 3);
  EXPECT_EQ(r->world_size, 4);
  EXPECT_EQ(r->world_from, "SLURM_NTASKS");
  // LOOM_WORLD_SIZE, then --world-size, override the task count.
  r = Resolve(std::nullopt, std::nullopt,
              {{"SLURM_PROCID", "1"}, {"SLURM_NTASKS", "9"}, {"LOOM_WORLD_SIZE", "2"}});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->world_size, 2);
  r = Resolve(std::nullopt, 3, {{"SLURM_PROCID", "2"}, {"LOOM_WORLD_SIZE", "2"}});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->world_size, 3);
}

TEST(LaunchEnvTest, KubernetesPodOrdinalGivesTheRank) {
  const Env pod = {{"KUBERNETES_SERVICE_HOST", "10.96.0.1"},
                   {"HOSTNAME", "loom-worker-1"},
                   {"LOOM_WORLD_SIZE", "2"}};
  auto r = Resolve(std::nullopt, std::nullopt, pod);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->rank, 1);
  EXPECT_EQ(r->world_size, 2);
  EXPECT_EQ(r->rank_from, "the pod ordinal of HOSTNAME=loom-worker-1");
  // Outside a pod, HOSTNAME (which shells export) is not a rank.
  EXPECT_NE(Error(Resolve(std::nullopt, 2, {{"HOSTNAME", "node-1"}})).find("--rank is required"),
            std::string::npos);
}

TEST(LaunchEnvTest, MalformedValuesAreNamed) {
  for (const char* bad : {"abc", "-1", "2x", " 2", "1.5", "99999999999", "+1"}) {
    EXPECT_EQ(Error(Resolve(std::nullopt, 2, {{"SLURM_PROCID", bad}})),
              std::string("SLURM_PROCID=\"") + bad +
                  "\" is not a rank (a non-negative integer)");
    EXPECT_EQ(Error(Resolve(0, std::nullopt, {{"SLURM_NTASKS", bad}})),
              std::string("SLURM_NTASKS=\"") + bad +
                  "\" is not a world size (a non-negative integer)");
    EXPECT_EQ(Error(Resolve(0, std::nullopt, {{"LOOM_WORLD_SIZE", bad}})),
              std::string("LOOM_WORLD_SIZE=\"") + bad +
                  "\" is not a world size (a non-negative integer)");
  }
  // A malformed source is an error, not a fall-through to the next one.
  EXPECT_NE(Error(Resolve(0, std::nullopt, {{"LOOM_WORLD_SIZE", "x"}, {"SLURM_NTASKS", "2"}}))
                .find("LOOM_WORLD_SIZE"),
            std::string::npos);
  EXPECT_EQ(Error(Resolve(std::nullopt, 2,
                          {{"KUBERNETES_SERVICE_HOST", "10.96.0.1"}, {"HOSTNAME", "loom"}})),
            "no --rank, and HOSTNAME=\"loom\" has no pod ordinal (a StatefulSet pod is named "
            "<set>-<ordinal>)");
}

TEST(LaunchEnvTest, RankOutsideTheWorldOrMissingSourcesAreRefused) {
  EXPECT_EQ(Error(Resolve(std::nullopt, std::nullopt, {{"SLURM_PROCID", "4"}, {"SLURM_NTASKS", "4"}})),
            "rank 4 (SLURM_PROCID) of world size 4 (SLURM_NTASKS): need 0 <= rank < world size");
  EXPECT_EQ(Error(Resolve(0, 0, {})),
            "rank 0 (--rank) of world size 0 (--world-size): need 0 <= rank < world size");
  EXPECT_EQ(Error(Resolve(0, std::nullopt, {})),
            "--world-size is required (or LOOM_WORLD_SIZE, or SLURM_NTASKS under srun)");
  EXPECT_NE(Error(Resolve(std::nullopt, 2, {})).find("--rank is required"), std::string::npos);
  EXPECT_NE(Error(Resolve(int64_t{1} << 40, 2, {})).find("out of range"), std::string::npos);
}

}  // namespace
}  // namespace loom
