// A real cluster — loom-worker processes spawned by the Supervisor, gRPC over Unix sockets, Gloo
// between the ranks, the Scheduler driving WorkerGroup::Step — gives HF's greedy tokens at TP 1,
// 2 and 4; collective-call errors name the failing or late rank and leave the cluster serving;
// workers that cannot start, and workers that die, are reported by rank; no process outlives
// Stop.
#include "tests/e2e/cluster.h"
#include "tests/e2e/model_dir.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "kernels/execution_context.h"
#include "tests/test_paths.h"

extern char** environ;

namespace loom {
namespace {

using testing::Cluster;
using testing::GenerateGreedy;
using testing::StartCluster;

using testing::HfReference;

void ExpectReferenceTokens(Cluster& cluster, const std::string& model_dir) {
  const HfReference ref = testing::ReadHfReference(model_dir);
  auto outputs = GenerateGreedy(cluster, ref.prompts, static_cast<int64_t>(ref.greedy[0].size()));
  ASSERT_TRUE(outputs.ok()) << outputs.status();
  for (size_t i = 0; i < ref.prompts.size(); ++i) {
    EXPECT_EQ((*outputs)[i], ref.greedy[i]) << model_dir << " prompt " << i;
  }
}

// The first reference prompt, 8 tokens: enough to show the cluster still generates.
void ExpectStillGenerates(Cluster& cluster, const std::string& model_dir) {
  const HfReference ref = testing::ReadHfReference(model_dir);
  auto outputs = GenerateGreedy(cluster, {ref.prompts[0]}, 8);
  ASSERT_TRUE(outputs.ok()) << outputs.status();
  EXPECT_EQ((*outputs)[0], std::vector<int32_t>(ref.greedy[0].begin(), ref.greedy[0].begin() + 8));
}

bool ProcessExists(int64_t pid) { return std::filesystem::exists(absl::StrCat("/proc/", pid)); }

struct TpCase {
  std::string model;
  int tp;
};

class ClusterGreedyTest : public ::testing::TestWithParam<TpCase> {};

TEST_P(ClusterGreedyTest, TokensEqualTheHfReference) {
  const std::string model_dir = testing::FixtureModelDir(GetParam().model);
  auto cluster = StartCluster(model_dir, GetParam().tp);
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  ExpectReferenceTokens(*cluster, model_dir);
}

// Every model at TP 2 and 4 (all have 4 attention heads; at TP 4 their 1 or 2 KV heads are
// replicated), and TP 1 as the degenerate group.
INSTANTIATE_TEST_SUITE_P(Fixtures, ClusterGreedyTest,
                         ::testing::Values(TpCase{"llama-gqa", 2}, TpCase{"llama3-rope", 2},
                                           TpCase{"llama-linear-rope", 2}, TpCase{"qwen2", 2},
                                           TpCase{"qwen3", 2}, TpCase{"mistral", 2},
                                           TpCase{"llama-gqa", 4}, TpCase{"llama3-rope", 4},
                                           TpCase{"llama-linear-rope", 4}, TpCase{"qwen2", 4},
                                           TpCase{"qwen3", 4}, TpCase{"mistral", 4},
                                           TpCase{"llama-gqa", 1}, TpCase{"qwen2", 1},
                                           TpCase{"qwen3", 1}, TpCase{"mistral", 1},
                                           // Real checkpoints' features, 16-bit and sharded.
                                           TpCase{"mistral-swa-f16-sharded", 2},
                                           TpCase{"qwen2-swa-bf16", 2},
                                           TpCase{"llama-bias-f16", 2},
                                           TpCase{"qwen3-yarn-bf16", 2},
                                           TpCase{"llama-dynamic-f16", 2},
                                           TpCase{"mistral-swa-f16", 4},
                                           TpCase{"qwen2-swa-f16-sharded", 4},
                                           TpCase{"llama-bias-bf16", 4},
                                           TpCase{"qwen3-yarn-f16", 4},
                                           TpCase{"llama-dynamic-bf16", 4},
                                           TpCase{"mistral-swa-f32", 4},
                                           TpCase{"qwen2-swa-f32", 2},
                                           TpCase{"llama-bias-f32", 4},
                                           TpCase{"qwen3-yarn-f32", 2},
                                           TpCase{"llama-dynamic-f32", 2}),
                         [](const auto& info) {
                           std::string name = absl::StrCat(info.param.model, "_tp", info.param.tp);
                           for (char& c : name) c = c == '-' ? '_' : c;
                           return name;
                         });

class ClusterCallTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto cluster = StartCluster(testing::FixtureModelDir("llama-gqa"), 2);
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = new Cluster(std::move(*cluster));
  }
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
  }
  void SetUp() override { ASSERT_NE(cluster_, nullptr); }
  void TearDown() override { ExpectStillGenerates(*cluster_, testing::FixtureModelDir("llama-gqa")); }

  static Cluster* cluster_;
};
Cluster* ClusterCallTest::cluster_ = nullptr;

constexpr std::chrono::milliseconds kCallTimeout = std::chrono::seconds(10);

TEST_F(ClusterCallTest, DescribeReportsEveryRank) {
  auto results = cluster_->group->CollectiveCall("describe", "", kCallTimeout);
  ASSERT_TRUE(results.ok()) << results.status();
  ASSERT_EQ(results->size(), 2u);
  const std::vector<int64_t> pids = cluster_->supervisor->worker_pids();
  for (int r = 0; r < 2; ++r) {
    const nlohmann::json& d = (*results)[r].result;
    EXPECT_EQ((*results)[r].rank, r);
    EXPECT_EQ(d.at("rank"), r);
    EXPECT_EQ(d.at("world_size"), 2);
    EXPECT_EQ(d.at("pid"), pids[r]);
    EXPECT_EQ(d.at("device"), "cpu");
    EXPECT_EQ(d.at("state"), "ready");
    EXPECT_EQ(d.at("architecture"), "LlamaForCausalLM");
    EXPECT_EQ(d.at("weight_dtype"), "float32");
    EXPECT_GT(d.at("weight_bytes").get<int64_t>(), 0);
    EXPECT_EQ(d.at("num_kv_blocks"), cluster_->num_kv_blocks);
    EXPECT_GT(d.at("kv_cache_bytes").get<int64_t>(), 0);
    EXPECT_GT(d.at("rss_bytes").get<int64_t>(), 0);
  }
}

TEST_F(ClusterCallTest, ASubsetOfRanksAnswersAlone) {
  auto results = cluster_->group->CollectiveCall("check_health", "", kCallTimeout, {1});
  ASSERT_TRUE(results.ok()) << results.status();
  ASSERT_EQ(results->size(), 1u);
  EXPECT_EQ((*results)[0].rank, 1);
  EXPECT_EQ((*results)[0].result.at("state"), "ready");
}

TEST_F(ClusterCallTest, UnknownMethodIsNotFoundListingTheRegisteredOnes) {
  auto results = cluster_->group->CollectiveCall("no_such_method", "", kCallTimeout);
  ASSERT_FALSE(results.ok());
  EXPECT_TRUE(absl::IsNotFound(results.status())) << results.status();
  for (const char* name : {"rank 0", "rank 1", "describe", "check_health", "stall"}) {
    EXPECT_TRUE(absl::StrContains(results.status().message(), name)) << results.status();
  }
}

TEST_F(ClusterCallTest, BadJsonArgsAreInvalidArgument) {
  auto results = cluster_->group->CollectiveCall("fail_on_rank", "{not json", kCallTimeout);
  ASSERT_FALSE(results.ok());
  EXPECT_TRUE(absl::IsInvalidArgument(results.status())) << results.status();
  EXPECT_TRUE(absl::StrContains(results.status().message(), "not valid JSON")) << results.status();
}

TEST_F(ClusterCallTest, AMethodFailingOnOneRankFailsTheCallNamingThatRank) {
  auto results = cluster_->group->CollectiveCall("fail_on_rank", R"({"rank": 1})", kCallTimeout);
  ASSERT_FALSE(results.ok());
  EXPECT_TRUE(absl::IsInternal(results.status())) << results.status();
  EXPECT_TRUE(absl::StrContains(results.status().message(), "rank 1: fail_on_rank"))
      << results.status();
  EXPECT_FALSE(absl::StrContains(results.status().message(), "rank 0")) << results.status();
}

TEST_F(ClusterCallTest, ARankMissingTheDeadlineIsDeadlineExceededNamingIt) {
  const auto start = std::chrono::steady_clock::now();
  auto results = cluster_->group->CollectiveCall("stall", R"({"seconds": 3, "rank": 1})",
                                                 std::chrono::milliseconds(300));
  const auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(results.ok());
  EXPECT_TRUE(absl::IsDeadlineExceeded(results.status())) << results.status();
  EXPECT_TRUE(absl::StrContains(results.status().message(), "rank 1 did not answer"))
      << results.status();
  EXPECT_FALSE(absl::StrContains(results.status().message(), "rank 0")) << results.status();
  EXPECT_LT(elapsed, std::chrono::seconds(2));
}

TEST_F(ClusterCallTest, ACallNeedsAPositiveDeadline) {
  auto results = cluster_->group->CollectiveCall("describe", "", std::chrono::milliseconds(0));
  EXPECT_TRUE(absl::IsInvalidArgument(results.status())) << results.status();
}

TEST_F(ClusterCallTest, ABadStepIsRejectedByEveryRankAndTheGroupKeepsServing) {
  StepInput step;
  SequenceStep& s = step.sequences.emplace_back();
  s.token_ids = {1, 2, 100000};  // outside the vocabulary
  s.block_table = {0};
  auto out = cluster_->group->Step(step);
  ASSERT_FALSE(out.ok());
  EXPECT_TRUE(absl::IsInvalidArgument(out.status())) << out.status();
  EXPECT_TRUE(absl::StrContains(out.status().message(), "token id 100000")) << out.status();
  EXPECT_TRUE(cluster_->group->broken().ok());
}

TEST(ClusterStartTest, ABadDeviceFailsTheStartNamingTheRank) {
  SupervisorOptions options;
  options.device = "tpu:0";
  auto cluster = StartCluster(testing::FixtureModelDir("llama-gqa"), 2, options);
  ASSERT_FALSE(cluster.ok());
  // Every rank fails the same way; the supervisor waits a moment to list them all, but one is
  // enough to name.
  const std::string message(cluster.status().message());
  EXPECT_TRUE(absl::StrContains(message, "rank 0: unknown device \"tpu:0\"") ||
              absl::StrContains(message, "rank 1: unknown device \"tpu:0\""))
      << cluster.status();
}

// A GPU cluster on a host without GPUs: each worker refuses at start, naming its rank and
// device, and the start fails (the supervisor's test of orphans covers the processes).
TEST(ClusterStartTest, CudaWithoutAGpuFailsTheStartNamingRankAndDevice) {
  if (kernels::VisibleCudaDevices() > 0) {
    GTEST_SKIP() << "this host has a GPU; the no-GPU error cannot be provoked here";
  }
  SupervisorOptions options;
  options.device = "cuda";
  auto cluster = StartCluster(testing::FixtureModelDir("llama-gqa"), 2, options);
  ASSERT_FALSE(cluster.ok());
  const std::string message(cluster.status().message());
  EXPECT_TRUE(absl::StrContains(message, "rank 0: device cuda: no CUDA device is visible") ||
              absl::StrContains(message, "rank 1: device cuda: no CUDA device is visible"))
      << cluster.status();
}

// One device index for several ranks is refused whatever the host has.
TEST(ClusterStartTest, OneDeviceIndexForTwoRanksIsRefused) {
  SupervisorOptions options;
  options.device = "cuda:0";
  auto cluster = StartCluster(testing::FixtureModelDir("llama-gqa"), 2, options);
  ASSERT_FALSE(cluster.ok());
  const std::string message(cluster.status().message());
  EXPECT_TRUE(absl::StrContains(message, "device cuda:0: ")) << cluster.status();
  EXPECT_TRUE(absl::StrContains(message, kernels::VisibleCudaDevices() == 0
                                             ? "no CUDA device is visible"
                                             : "one device index cannot serve 2 ranks"))
      << cluster.status();
}

TEST(ClusterStartTest, AnUnreadableModelFailsInitNamingTheRank) {
  auto cluster = StartCluster(testing::MakeTempDir("loom-no-model") + "/missing", 2);
  ASSERT_FALSE(cluster.ok());
  const std::string message(cluster.status().message());
  EXPECT_TRUE(absl::StrContains(message, "rank 0: cannot read") ||
              absl::StrContains(message, "rank 1: cannot read"))
      << cluster.status();
  EXPECT_TRUE(absl::StrContains(message, "missing/config.json")) << cluster.status();
}

TEST(ClusterStartTest, AWorkerThatExitsBeforeRegisteringIsNamedWithItsStderr) {
  SupervisorOptions options;
  options.world_size = 2;
  options.worker_binary = testing::WorkerBinary();
  options.extra_worker_args = {"--no-such-flag", "1"};
  auto supervisor = Supervisor::Start(options);
  ASSERT_FALSE(supervisor.ok());
  EXPECT_TRUE(absl::StrContains(supervisor.status().message(), "rank 0 exited with code 2"))
      << supervisor.status();
  EXPECT_TRUE(absl::StrContains(supervisor.status().message(), "unknown flag"))
      << supervisor.status();
}

TEST(ClusterFailureTest, AKilledWorkerFailsTheNextStepNamingItAndStopLeavesNoProcess) {
  const std::string model_dir = testing::FixtureModelDir("qwen2");
  auto cluster = StartCluster(model_dir, 2);
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  ExpectStillGenerates(*cluster, model_dir);
  const std::vector<int64_t> pids = cluster->supervisor->worker_pids();
  ASSERT_EQ(kill(static_cast<pid_t>(pids[1]), SIGKILL), 0);

  const auto start = std::chrono::steady_clock::now();
  const HfReference ref = testing::ReadHfReference(model_dir);
  auto outputs = GenerateGreedy(*cluster, {ref.prompts[0]}, 4);
  const auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(outputs.ok());
  EXPECT_TRUE(absl::IsUnavailable(outputs.status())) << outputs.status();
  EXPECT_TRUE(absl::StrContains(outputs.status().message(), "rank 1 was killed by signal 9"))
      << outputs.status();
  EXPECT_LT(elapsed, std::chrono::seconds(2));
  // The group stays broken, with the same cause.
  EXPECT_TRUE(absl::StrContains(cluster->group->broken().message(), "rank 1")) << outputs.status();

  cluster->group.reset();
  cluster->supervisor->Stop();
  for (int64_t pid : pids) EXPECT_FALSE(ProcessExists(pid)) << "pid " << pid;
}

TEST(ClusterFailureTest, StopShutsDownHealthyWorkersAndRemovesTheSocketDirectory) {
  auto cluster = StartCluster(testing::FixtureModelDir("qwen3"), 2);
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  const std::vector<int64_t> pids = cluster->supervisor->worker_pids();
  const std::string dir = cluster->supervisor->socket_dir();
  EXPECT_EQ(std::filesystem::status(dir).permissions() & std::filesystem::perms::all,
            std::filesystem::perms::owner_all);
  cluster->group.reset();
  cluster->supervisor->Stop();
  for (int64_t pid : pids) EXPECT_FALSE(ProcessExists(pid)) << "pid " << pid;
  EXPECT_FALSE(std::filesystem::exists(dir));
}

TEST(ClusterExternalTest, WorkersStartedByAnOutsideLauncherRegisterAndGenerate) {
  const std::string model_dir = testing::FixtureModelDir("llama3-rope");
  std::vector<pid_t> pids;
  SupervisorOptions options;
  options.external = true;  // the controller listens on 127.0.0.1, any free port
  options.on_listening = [&pids](const std::string& address) {
    for (int rank = 0; rank < 2; ++rank) {
      std::vector<std::string> args = {testing::WorkerBinary(),
                                       "--controller",
                                       address,
                                       "--rank",
                                       absl::StrCat(rank),
                                       "--world-size",
                                       "2",
                                       "--threads",
                                       "1",
                                       "--listen",
                                       "127.0.0.1:0"};
      std::vector<char*> argv;
      for (std::string& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      pid_t pid = -1;
      ASSERT_EQ(posix_spawn(&pid, argv[0], nullptr, nullptr, argv.data(), environ), 0);
      pids.push_back(pid);
    }
  };
  auto cluster = StartCluster(model_dir, 2, options);
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  for (const std::string& address : cluster->supervisor->worker_addresses()) {
    EXPECT_TRUE(absl::StartsWith(address, "127.0.0.1:")) << address;
  }
  ExpectReferenceTokens(*cluster, model_dir);
  cluster->group.reset();
  cluster->supervisor->Stop();
  // Stop asked them to shut down: they exit 0 on their own.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  for (pid_t pid : pids) {
    int status = 0;
    while (waitpid(pid, &status, WNOHANG) == 0 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (!ProcessExists(pid) || waitpid(pid, &status, WNOHANG) != 0) {
      EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;
    } else {
      ADD_FAILURE() << "external worker " << pid << " still running after Stop";
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
  }
}

}  // namespace
}  // namespace loom
