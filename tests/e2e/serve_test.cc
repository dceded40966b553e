// `loom serve` as a user runs it: a real controller process with TP=2 workers on a free port,
// driven through the Loom gRPC service and the client verbs. Greedy tokens equal the HF
// reference; concurrent streams get exactly the tokens they get alone; text prompts are
// tokenized and outputs detokenized; SIGTERM and `loom stop` exit 0 leaving no worker; a worker
// killed mid-generation ends every in-flight request with UNAVAILABLE naming its rank.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "controller/tokenizer/tokenizer.h"
#include "kernels/cpu/cpu_isa.h"
#include "loom/v1/loom.grpc.pb.h"
#include "tests/e2e/model_dir.h"
#include "tests/e2e/serve_process.h"
#include "tests/test_paths.h"

namespace loom {
namespace {

using Clock = std::chrono::steady_clock;
using testing::ProcessExists;
using testing::Server;

std::string Loom() { return testing::BinaryDir() + "/tools/loom"; }

using testing::IdsRequest;
using testing::Streamed;

// Every answer here comes from the first weights; `on_first_message` runs once.
Streamed Generate(loom::v1::Loom::Stub& stub, const loom::v1::GenerateRequest& request,
                  std::function<void()> on_first_message = {}) {
  bool first = true;
  Streamed out = testing::Generate(stub, request, [&] {
    if (first && on_first_message) on_first_message();
    first = false;
  });
  for (uint64_t v : out.versions) EXPECT_EQ(v, 1u);
  return out;
}

using testing::HfReference;

constexpr char kSmallEngine[] = "--weight-dtype float32 --block-size 4 --kv-cache-memory 1M";

// One TP=2 server over a fixture model (no tokenizer.json: prompts are ids), shared by the
// tests that leave it serving.
class ServeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ =
        new Server(absl::StrCat("--model ", testing::FixtureModelDir("llama-gqa"), " --tp 2 ", kSmallEngine));
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override { ASSERT_TRUE(server_->ready()) << server_->Log(); }

  static Server* server_;
};
Server* ServeTest::server_ = nullptr;

TEST_F(ServeTest, GreedyTokensEqualTheHfReference) {
  const HfReference ref = testing::ReadHfReference(testing::FixtureModelDir("llama-gqa"));
  for (size_t i = 0; i < ref.prompts.size(); ++i) {
    Streamed out = Generate(server_->stub(), IdsRequest(ref.prompts[i], ref.greedy[i].size()));
    ASSERT_TRUE(out.status.ok()) << out.status.error_message();
    EXPECT_EQ(out.ids, ref.greedy[i]) << "prompt " << i;
    EXPECT_EQ(out.finish_reason, "length");
    EXPECT_EQ(out.usage.prompt_tokens(), static_cast<int>(ref.prompts[i].size()));
    EXPECT_EQ(out.usage.completion_tokens(), static_cast<int>(ref.greedy[i].size()));
    EXPECT_TRUE(out.text.empty());  // no tokenizer.json in the fixture
  }
}

TEST_F(ServeTest, SixteenConcurrentStreamsGetTheTokensTheyGetAlone) {
  std::vector<loom::v1::GenerateRequest> requests;
  for (int i = 0; i < 16; ++i) {
    std::vector<int32_t> prompt;
    for (int t = 0; t < 3 + (i * 7) % 23; ++t) prompt.push_back((i * 31 + t * 17) % 500 + 3);
    requests.push_back(IdsRequest(prompt, 4 + (i * 5) % 29));
  }
  std::vector<Streamed> alone;
  for (const auto& r : requests) alone.push_back(Generate(server_->stub(), r));
  std::vector<Streamed> together(requests.size());
  std::vector<std::thread> clients;
  for (size_t i = 0; i < requests.size(); ++i) {
    clients.emplace_back([&, i] { together[i] = Generate(server_->stub(), requests[i]); });
  }
  for (std::thread& t : clients) t.join();
  for (size_t i = 0; i < requests.size(); ++i) {
    ASSERT_TRUE(alone[i].status.ok()) << alone[i].status.error_message();
    ASSERT_TRUE(together[i].status.ok()) << together[i].status.error_message();
    EXPECT_EQ(together[i].ids.size(), static_cast<size_t>(requests[i].max_tokens()));
    EXPECT_EQ(together[i].ids, alone[i].ids) << "client " << i;
  }
}

TEST_F(ServeTest, BadRequestsAreInvalidArgumentAndTheServerKeepsServing) {
  Streamed text = Generate(server_->stub(), [] {
    loom::v1::GenerateRequest r;
    r.set_prompt("hello");
    return r;
  }());
  EXPECT_EQ(text.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(absl::StrContains(text.status.error_message(), "tokenizer.json"))
      << text.status.error_message();
  Streamed bad_id = Generate(server_->stub(), IdsRequest({1, 99999}, 4));
  EXPECT_EQ(bad_id.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(absl::StrContains(bad_id.status.error_message(), "99999"));
  Streamed ok = Generate(server_->stub(), IdsRequest({1, 2, 3}, 4));
  EXPECT_TRUE(ok.status.ok()) << ok.status.error_message();
  EXPECT_EQ(ok.ids.size(), 4u);
}

TEST_F(ServeTest, CollectiveRpcAnswersPerRankAndNamesAFailingRank) {
  grpc::ClientContext context;
  loom::v1::CollectiveRpcRequest request;
  request.set_method("describe");
  loom::v1::CollectiveRpcResponse response;
  ASSERT_TRUE(server_->stub().CollectiveRpc(&context, request, &response).ok());
  ASSERT_EQ(response.results_size(), 2);
  for (int r = 0; r < 2; ++r) {
    EXPECT_EQ(nlohmann::json::parse(response.results(r).result_json()).at("rank"), r);
  }
  grpc::ClientContext context2;
  request.set_method("no_such_method");
  grpc::Status s = server_->stub().CollectiveRpc(&context2, request, &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_TRUE(absl::StrContains(s.error_message(), "rank 0")) << s.error_message();
}

TEST_F(ServeTest, ClientVerbsTalkToTheServer) {
  const std::string at = " --address " + server_->address();
  std::string out;
  ASSERT_EQ(testing::RunCommand(Loom() + " status" + at, &out), 0) << out;
  EXPECT_TRUE(absl::StrContains(out, "tp=2")) << out;
  EXPECT_TRUE(absl::StrContains(out, "rank 1: ready")) << out;
  // Each rank says where its memory went, on which device (the host names its kernel variant).
  EXPECT_TRUE(absl::StrContains(
      out, absl::StrCat("memory: cpu (", kernels::CpuIsaName(kernels::ActiveIsa()), ")")))
      << out;
  EXPECT_TRUE(absl::StrContains(out, "): weights ")) << out;
  EXPECT_TRUE(absl::StrContains(out, " blocks); host: kv_cache_bytes as configured")) << out;
  ASSERT_EQ(testing::RunCommand(Loom() + " rpc check_health" + at, &out), 0) << out;
  EXPECT_TRUE(absl::StrContains(out, "rank 0: {\"state\":\"ready\"}")) << out;
  EXPECT_TRUE(absl::StrContains(out, "rank 1: {\"state\":\"ready\"}")) << out;
  // The two ranks run on this machine, so their steps' collectives go through shared memory.
  ASSERT_EQ(testing::RunCommand(Loom() + " rpc describe" + at, &out), 0) << out;
  EXPECT_TRUE(absl::StrContains(out, "\"step_collectives\":\"shared memory\"")) << out;
  EXPECT_NE(testing::RunCommand(Loom() + " rpc no_such_method" + at, &out), 0);
  EXPECT_TRUE(absl::StrContains(out, "no_such_method")) << out;
  EXPECT_NE(testing::RunCommand(Loom() + " rpc describe '{bad'" + at, &out), 0);
  EXPECT_TRUE(absl::StrContains(out, "not valid JSON")) << out;

  const HfReference ref = testing::ReadHfReference(testing::FixtureModelDir("llama-gqa"));
  std::string ids;
  for (int32_t id : ref.prompts[0]) absl::StrAppend(&ids, ids.empty() ? "" : ",", id);
  ASSERT_EQ(testing::RunCommand(Loom() +
                                    " generate --json --ignore-eos --max-tokens 32 "
                                    "--prompt-ids " +
                                    ids + at,
                                &out),
            0)
      << out;
  nlohmann::json j = nlohmann::json::parse(out);
  EXPECT_EQ(j.at("output_ids").get<std::vector<int32_t>>(), ref.greedy[0]);
  EXPECT_EQ(j.at("finish_reason"), "length");
}

TEST(ServeCliTest, NoServerIsAClearError) {
  std::string out;
  EXPECT_EQ(testing::RunCommand(Loom() + " status --address 127.0.0.1:1 --timeout 1", &out), 1);
  EXPECT_TRUE(absl::StrContains(out, "cannot reach a Loom server at 127.0.0.1:1")) << out;
  EXPECT_EQ(testing::RunCommand(
                Loom() + " serve --model " + testing::FixtureModelDir("llama-gqa") + " --launcher slurm", &out),
            1);
  EXPECT_TRUE(absl::StrContains(out, "--launcher must be local or external")) << out;
}

TEST(ServeLifecycleTest, AWorkerThatCannotStartFailsServeNamingItsRank) {
  Server server(
      absl::StrCat("--model ", testing::FixtureModelDir("llama-gqa"), " --tp 2 --device bogus ", kSmallEngine));
  EXPECT_FALSE(server.ready());
  ASSERT_TRUE(server.Exited(std::chrono::seconds(60))) << server.Log();
  EXPECT_NE(server.exit_code(), 0);
  EXPECT_TRUE(absl::StrContains(server.Log(), "rank 0")) << server.Log();
  EXPECT_TRUE(absl::StrContains(server.Log(), "bogus")) << server.Log();
}

TEST(ServeLifecycleTest, SigtermStopsTheWorkersAndExitsZero) {
  Server server(absl::StrCat("--model ", testing::FixtureModelDir("qwen3"), " --tp 2 ", kSmallEngine));
  ASSERT_TRUE(server.ready()) << server.Log();
  const std::vector<int64_t> pids = server.WorkerPids();
  ASSERT_EQ(pids.size(), 2u);
  kill(server.pid(), SIGTERM);
  ASSERT_TRUE(server.Exited(std::chrono::seconds(20))) << server.Log();
  EXPECT_EQ(server.exit_code(), 0) << server.Log();
  for (int64_t pid : pids) EXPECT_FALSE(ProcessExists(pid)) << "worker " << pid;
}

TEST(ServeLifecycleTest, AnOutsideLauncherStartsTheWorkersAndGenerationWorks) {
  std::vector<pid_t> workers;
  const std::string marker = "loom-worker --controller ";
  Server server(absl::StrCat("--model ", testing::FixtureModelDir("llama-gqa"), " --tp 2 --launcher external ",
                             kSmallEngine),
                [&](const std::string& log) {
                  const size_t at = log.find(marker);
                  if (!workers.empty() || at == std::string::npos) return;
                  const size_t begin = at + marker.size();
                  const std::string controller = log.substr(begin, log.find(' ', begin) - begin);
                  for (int rank = 0; rank < 2; ++rank) {  // as Slurm or Kubernetes would
                    workers.push_back(testing::SpawnTiedChild(
                        {testing::BinaryDir() + "/worker/loom-worker", "--controller", controller,
                         "--rank", std::to_string(rank), "--world-size", "2", "--threads", "1"}));
                  }
                });
  ASSERT_TRUE(server.ready()) << server.Log();
  ASSERT_EQ(workers.size(), 2u);
  EXPECT_EQ(server.WorkerPids(), std::vector<int64_t>(workers.begin(), workers.end()));
  const HfReference ref = testing::ReadHfReference(testing::FixtureModelDir("llama-gqa"));
  Streamed out = Generate(server.stub(), IdsRequest(ref.prompts[1], ref.greedy[1].size()));
  ASSERT_TRUE(out.status.ok()) << out.status.error_message();
  EXPECT_EQ(out.ids, ref.greedy[1]);

  std::string cli;
  ASSERT_EQ(testing::RunCommand(Loom() + " stop --address " + server.address(), &cli), 0) << cli;
  ASSERT_TRUE(server.Exited(std::chrono::seconds(20))) << server.Log();
  EXPECT_EQ(server.exit_code(), 0) << server.Log();
  for (pid_t pid : workers) {  // asked to shut down by the controller
    int status = 0;
    EXPECT_EQ(waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status)) << "worker " << pid << " status " << status;
  }
}

// A model with a tokenizer.json and room for long generations.
std::string TokenizerModel() {
  static const std::string dir =
      testing::MakeModel("--preset tiny --dtype float32 --max-position 4096 --seed 3");
  return dir;
}

TEST(ServeLifecycleTest, TextPromptsAreTokenizedAndOutputsStreamedAsText) {
  const std::string model = TokenizerModel();
  Server server(absl::StrCat("--model ", model, " --tp 2 ", kSmallEngine));
  ASSERT_TRUE(server.ready()) << server.Log();
  auto tokenizer = tokenizer::Tokenizer::FromModelDir(model);
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  loom::v1::GenerateRequest request;
  request.set_prompt("Hello, world");
  request.set_max_tokens(12);
  request.set_ignore_eos(true);
  Streamed out = Generate(server.stub(), request);
  ASSERT_TRUE(out.status.ok()) << out.status.error_message();
  ASSERT_EQ(out.ids.size(), 12u);
  auto prompt_ids = (*tokenizer)->Encode("Hello, world", true);
  ASSERT_TRUE(prompt_ids.ok());
  EXPECT_EQ(out.usage.prompt_tokens(), static_cast<int>(prompt_ids->size()));
  auto text = (*tokenizer)->Decode(out.ids, true);
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(out.text, *text);
  // The same prompt as ids gives the same tokens.
  Streamed by_ids = Generate(server.stub(), IdsRequest(*prompt_ids, 12));
  EXPECT_EQ(by_ids.ids, out.ids);

  std::string cli;
  ASSERT_EQ(testing::RunCommand(Loom() + " generate --address " + server.address() +
                                    " --prompt 'Hello, world' --max-tokens 12 --ignore-eos",
                                &cli),
            0)
      << cli;
  EXPECT_TRUE(absl::StrContains(cli, *text)) << cli;
  ASSERT_EQ(testing::RunCommand(Loom() + " stop --address " + server.address(), &cli), 0) << cli;
  ASSERT_TRUE(server.Exited(std::chrono::seconds(20))) << server.Log();
  EXPECT_EQ(server.exit_code(), 0);
}

TEST(ServeLifecycleTest, StopStringsEndTheStreamBeforeThemOverGrpc) {
  const std::string model = TokenizerModel();
  Server server(absl::StrCat("--model ", model, " --tp 2 ", kSmallEngine));
  ASSERT_TRUE(server.ready()) << server.Log();
  loom::v1::GenerateRequest request;
  request.set_prompt("Hello, world");
  request.set_max_tokens(24);
  request.set_ignore_eos(true);
  Streamed full = Generate(server.stub(), request);
  ASSERT_TRUE(full.status.ok()) << full.status.error_message();
  ASSERT_GE(full.text.size(), 8u) << full.text;
  // A stop cut from the middle of the free-running text.
  const std::string stop = full.text.substr(full.text.size() / 2, 3);
  request.add_stop(stop);
  Streamed stopped = Generate(server.stub(), request);
  ASSERT_TRUE(stopped.status.ok()) << stopped.status.error_message();
  EXPECT_EQ(stopped.text, full.text.substr(0, full.text.find(stop))) << "stop " << stop;
  EXPECT_EQ(stopped.finish_reason, "stop");
  request.add_stop("");
  Streamed bad = Generate(server.stub(), request);
  EXPECT_EQ(bad.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST(ServeLifecycleTest, LogprobsTravelWithEveryTokenOverGrpc) {
  Server server(absl::StrCat("--model ", TokenizerModel(), " --tp 2 ", kSmallEngine));
  ASSERT_TRUE(server.ready()) << server.Log();
  loom::v1::GenerateRequest request;
  request.set_prompt("Hello, world");
  request.set_max_tokens(6);
  request.set_ignore_eos(true);
  request.set_logprobs(true);
  request.set_top_logprobs(3);
  grpc::ClientContext context;
  auto reader = server.stub().Generate(&context, request);
  loom::v1::GenerateResponse response;
  int tokens = 0;
  while (reader->Read(&response)) {
    ASSERT_EQ(response.logprobs_size(), response.token_ids_size());
    for (int i = 0; i < response.token_ids_size(); ++i, ++tokens) {
      const loom::v1::TokenLogprob& l = response.logprobs(i);
      ASSERT_EQ(l.top_ids_size(), 3);
      EXPECT_EQ(l.top_ids(0), response.token_ids(i)) << "greedy picks the most likely token";
      EXPECT_FLOAT_EQ(l.top_logprobs(0), l.logprob());
      EXPECT_LE(l.logprob(), 0.0f);
      EXPECT_GE(l.top_logprobs(0), l.top_logprobs(1));
      EXPECT_GE(l.top_logprobs(1), l.top_logprobs(2));
    }
  }
  ASSERT_TRUE(reader->Finish().ok());
  EXPECT_EQ(tokens, 6);
  request.set_top_logprobs(21);
  Streamed too_many = Generate(server.stub(), request);
  EXPECT_EQ(too_many.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  request.set_logprobs(false);
  request.set_top_logprobs(2);
  Streamed without = Generate(server.stub(), request);
  EXPECT_EQ(without.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

// Without restarts (--max-restarts 0; self_healing_test.cc covers them).
TEST(ServeLifecycleTest, AKilledWorkerEndsInFlightRequestsUnavailableNamingItsRank) {
  Server server(absl::StrCat("--model ", TokenizerModel(),
                             " --tp 2 --weight-dtype float32 --kv-cache-memory 256M "
                             "--max-restarts 0"));
  ASSERT_TRUE(server.ready()) << server.Log();
  const std::vector<int64_t> pids = server.WorkerPids();
  ASSERT_EQ(pids.size(), 2u);

  constexpr int kClients = 3;
  std::vector<Streamed> outs(kClients);
  std::vector<Clock::time_point> ended(kClients);
  std::atomic<int> started{0};
  std::vector<std::thread> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.emplace_back([&, i] {
      outs[i] = Generate(server.stub(), IdsRequest({5 + i, 6, 7}, 4000), [&] { ++started; });
      ended[i] = Clock::now();
    });
  }
  const auto wait_until = Clock::now() + std::chrono::seconds(30);
  while (started.load() < kClients && Clock::now() < wait_until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  const bool all_started = started.load() == kClients;
  const auto killed_at = Clock::now();
  kill(static_cast<pid_t>(pids[1]), SIGKILL);
  for (std::thread& t : clients) t.join();
  ASSERT_TRUE(all_started) << outs[0].status.error_message();
  for (int i = 0; i < kClients; ++i) {
    EXPECT_EQ(outs[i].status.error_code(), grpc::StatusCode::UNAVAILABLE)
        << i << ": " << outs[i].status.error_message();
    EXPECT_TRUE(absl::StrContains(outs[i].status.error_message(), "rank 1"))
        << outs[i].status.error_message();
    EXPECT_LT(ended[i] - killed_at, std::chrono::seconds(2));
  }

  // The controller stays up: status shows the failure, new requests are refused naming the rank.
  loom::v1::GetStatusResponse status = server.Status();
  ASSERT_EQ(status.ranks_size(), 2);
  EXPECT_EQ(status.ranks(0).state(), "ready");
  EXPECT_EQ(status.ranks(1).state(), "failed");
  EXPECT_TRUE(absl::StrContains(status.ranks(1).error(), "rank 1")) << status.ranks(1).error();
  Streamed after = Generate(server.stub(), IdsRequest({1, 2}, 4));
  EXPECT_EQ(after.status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_TRUE(absl::StrContains(after.status.error_message(), "rank 1"));

  std::string out;
  ASSERT_EQ(testing::RunCommand(Loom() + " stop --address " + server.address(), &out), 0) << out;
  ASSERT_TRUE(server.Exited(std::chrono::seconds(20))) << server.Log();
  EXPECT_EQ(server.exit_code(), 0) << server.Log();
  for (int64_t pid : pids) EXPECT_FALSE(ProcessExists(pid)) << "worker " << pid;
}

}  // namespace
}  // namespace loom
