// `loom serve` around its serving life: GET /health and /metrics answer while the workers load
// (503 "loading", the load's bytes) and the rest of the HTTP API is 503 until they serve; SIGTERM
// drains (running requests finish, new ones are refused on gRPC and HTTP, /health says
// "draining") within --shutdown-grace; and a gRPC request with n choices streams them
// interleaved, each equal to the same request alone with its seed.
#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "tests/e2e/http_client.h"
#include "tests/e2e/model_dir.h"
#include "tests/e2e/serve_process.h"
#include "tests/test_paths.h"

namespace loom {
namespace {

using nlohmann::json;
using testing::HttpClient;
using testing::IdsRequest;
using testing::Server;
using testing::Streamed;

constexpr char kSmallEngine[] = "--weight-dtype float32 --block-size 4 --kv-cache-memory 4M";

// The value of the exposition line that starts with `series` ("name{labels}"), or -1.
double MetricValue(const std::string& text, const std::string& series) {
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (!absl::StartsWith(line, series + " ")) continue;
    double v = -1;
    if (absl::SimpleAtod(line.substr(series.size() + 1), &v)) return v;
  }
  return -1;
}

TEST(GracefulServingTest, HealthAndMetricsAnswerWhileTheWorkersLoad) {
  const std::string model = testing::FixtureModelDir("llama-gqa");
  const std::string http_marker = "HTTP on http://", worker_marker = "loom-worker --controller ";
  std::vector<pid_t> workers;
  int health_while_loading = 0, completion_while_loading = 0;
  json health_body;
  std::string metrics_while_loading;
  Server server(
      absl::StrCat("--model ", model, " --tp 2 --launcher external ", kSmallEngine),
      [&](const std::string& log) {
        const size_t h = log.find(http_marker), w = log.find(worker_marker);
        if (!workers.empty() || h == std::string::npos || w == std::string::npos) return;
        // The controller waits for its workers: the HTTP API is up, nothing is loaded.
        const size_t begin = h + http_marker.size();
        httplib::Client c = HttpClient(log.substr(begin, log.find(' ', begin) - begin));
        if (auto r = c.Get("/health")) {
          health_while_loading = r->status;
          health_body = json::parse(r->body, nullptr, false);
        }
        if (auto r = c.Get("/metrics")) metrics_while_loading = r->body;
        if (auto r = c.Post("/v1/completions", R"({"model": "x", "prompt": [1, 2]})",
                            "application/json")) {
          completion_while_loading = r->status;
          EXPECT_TRUE(json::parse(r->body, nullptr, false).contains("error")) << r->body;
        }
        const size_t at = w + worker_marker.size();
        const std::string controller = log.substr(at, log.find(' ', at) - at);
        for (int rank = 0; rank < 2; ++rank) {
          workers.push_back(testing::SpawnTiedChild(
              {testing::BinaryDir() + "/worker/loom-worker", "--controller", controller, "--rank",
               std::to_string(rank), "--world-size", "2", "--threads", "1"}));
        }
      });
  ASSERT_TRUE(server.ready()) << server.Log();
  ASSERT_EQ(workers.size(), 2u) << server.Log();
  EXPECT_EQ(health_while_loading, 503);
  EXPECT_EQ(health_body.value("status", ""), "loading") << health_body.dump();
  EXPECT_EQ(completion_while_loading, 503);
  EXPECT_EQ(MetricValue(metrics_while_loading, "loom:server_ready"), 0) << metrics_while_loading;

  httplib::Client c = HttpClient(server.http_address());
  auto health = c.Get("/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200) << health->body;
  const testing::HfReference ref = testing::ReadHfReference(model);
  Streamed out = testing::Generate(server.stub(), IdsRequest(ref.prompts[0], 4));
  ASSERT_TRUE(out.status.ok()) << out.status.error_message();
  auto metrics = c.Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_EQ(MetricValue(metrics->body, "loom:server_ready"), 1);
  // Each rank loaded its shard; the load's bytes stay shown until the next load.
  for (int rank = 0; rank < 2; ++rank) {
    const std::string label = absl::StrCat("{rank=\"", rank, "\"}");
    const double total = MetricValue(metrics->body, "loom:weight_load_total_bytes" + label);
    EXPECT_GT(total, 0) << metrics->body;
    EXPECT_EQ(MetricValue(metrics->body, "loom:weight_load_bytes" + label), total);
  }
  EXPECT_EQ(MetricValue(metrics->body, "loom:request_queue_time_seconds_count"), 1)
      << metrics->body;
  for (pid_t pid : workers) kill(pid, SIGTERM);
}

// A model with room for long generations, so a request is surely running at the signal.
std::string LongModel() {
  static const std::string dir =
      testing::MakeModel("--preset tiny --dtype float32 --max-position 4096 --seed 5");
  return dir;
}

TEST(GracefulServingTest, SigtermFinishesTheRunningRequestsAndRefusesNewOnes) {
  Server server(absl::StrCat("--model ", LongModel(), " ", kSmallEngine));
  ASSERT_TRUE(server.ready()) << server.Log();
  std::atomic<bool> streaming{false};
  Streamed running;
  std::thread client([&] {
    running = testing::Generate(server.stub(), IdsRequest({1, 2, 3}, 800),
                                [&] { streaming = true; });
  });
  while (!streaming.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  ASSERT_EQ(kill(server.pid(), SIGTERM), 0);
  // Refused on both APIs while the running one goes on; /health tells a balancer to look away.
  Streamed refused;
  for (int i = 0; i < 200; ++i) {
    refused = testing::Generate(server.stub(), IdsRequest({1, 2}, 2));
    if (!refused.status.ok()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(refused.status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_TRUE(absl::StrContains(refused.status.error_message(), "draining"))
      << refused.status.error_message();
  httplib::Client c = HttpClient(server.http_address());
  auto health = c.Get("/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 503);
  EXPECT_EQ(json::parse(health->body, nullptr, false).value("status", ""), "draining");
  auto completion = c.Post("/v1/completions", R"({"model": "m", "prompt": [1, 2], "max_tokens": 2})",
                           "application/json");
  ASSERT_TRUE(completion);
  EXPECT_EQ(completion->status, 503) << completion->body;
  client.join();
  ASSERT_TRUE(running.status.ok()) << running.status.error_message();
  EXPECT_EQ(running.finish_reason, "length");
  EXPECT_EQ(running.ids.size(), 800u);
  ASSERT_TRUE(server.Exited(std::chrono::seconds(20))) << server.Log();
  EXPECT_EQ(server.exit_code(), 0) << server.Log();
}

TEST(GracefulServingTest, TheGracePeriodBoundsTheDrain) {
  // No grace: the running request ends at once, with the shutdown's error.
  Server server(absl::StrCat("--model ", LongModel(), " --shutdown-grace 0 ", kSmallEngine));
  ASSERT_TRUE(server.ready()) << server.Log();
  std::atomic<bool> streaming{false};
  Streamed running;
  std::thread client([&] {
    running = testing::Generate(server.stub(), IdsRequest({1, 2, 3}, 3000),
                                [&] { streaming = true; });
  });
  while (!streaming.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  ASSERT_EQ(kill(server.pid(), SIGTERM), 0);
  client.join();
  ASSERT_TRUE(server.Exited(std::chrono::seconds(20))) << server.Log();
  EXPECT_EQ(server.exit_code(), 0) << server.Log();
  EXPECT_EQ(running.status.error_code(), grpc::StatusCode::UNAVAILABLE)
      << running.ids.size() << " tokens, " << running.status.error_message();
  EXPECT_LT(running.ids.size(), 3000u);
  EXPECT_TRUE(absl::StrContains(server.Log(), "still running end now")) << server.Log();
}

// A gRPC stream's messages by choice (GenerateResponse.index).
struct ChoiceStreams {
  std::map<int, std::vector<int32_t>> ids;
  std::map<int, std::string> finish;
  std::map<int, int> completion_tokens;
  grpc::Status status;
};

ChoiceStreams ReadChoices(loom::v1::Loom::Stub& stub, const loom::v1::GenerateRequest& request) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  auto reader = stub.Generate(&context, request);
  ChoiceStreams out;
  loom::v1::GenerateResponse response;
  while (reader->Read(&response)) {
    const int k = response.index();
    EXPECT_TRUE(k >= 0 && k < std::max(1, request.n())) << k;
    EXPECT_TRUE(out.finish[k].empty()) << "a message after choice " << k << "'s last";
    out.ids[k].insert(out.ids[k].end(), response.token_ids().begin(), response.token_ids().end());
    if (!response.finish_reason().empty()) {
      out.finish[k] = response.finish_reason();
      out.completion_tokens[k] = response.usage().completion_tokens();
    }
  }
  out.status = reader->Finish();
  return out;
}

TEST(GrpcChoicesTest, NChoicesInterleaveAndEachIsTheRequestWithItsSeed) {
  const std::string model = testing::FixtureModelDir("llama-gqa");
  Server server(absl::StrCat("--model ", model, " --tp 2 ", kSmallEngine));
  ASSERT_TRUE(server.ready()) << server.Log();
  const testing::HfReference ref = testing::ReadHfReference(model);
  loom::v1::GenerateRequest request = IdsRequest(ref.prompts[0], 10);
  request.set_temperature(1.0f);
  request.set_seed(11);
  request.set_n(3);
  const ChoiceStreams three = ReadChoices(server.stub(), request);
  ASSERT_TRUE(three.status.ok()) << three.status.error_message();
  ASSERT_EQ(three.ids.size(), 3u);
  for (int k = 0; k < 3; ++k) {
    EXPECT_EQ(three.finish.at(k), "length");
    EXPECT_EQ(three.completion_tokens.at(k), 10);
    loom::v1::GenerateRequest alone = IdsRequest(ref.prompts[0], 10);
    alone.set_temperature(1.0f);
    alone.set_seed(11 + k);
    Streamed one = testing::Generate(server.stub(), alone);
    ASSERT_TRUE(one.status.ok());
    EXPECT_EQ(three.ids.at(k), one.ids) << "choice " << k;
  }
  EXPECT_NE(three.ids.at(0), three.ids.at(1)) << "choices with other seeds sampled the same tokens";
  // Greedy choices are each the HF greedy continuation.
  loom::v1::GenerateRequest greedy = IdsRequest(ref.prompts[1], ref.greedy[1].size());
  greedy.set_n(2);
  const ChoiceStreams both = ReadChoices(server.stub(), greedy);
  ASSERT_TRUE(both.status.ok());
  ASSERT_EQ(both.ids.size(), 2u);
  EXPECT_EQ(both.ids.at(0), ref.greedy[1]);
  EXPECT_EQ(both.ids.at(1), ref.greedy[1]);
  // Bad n: a clear error, the server unaffected.
  for (int bad : {-1, 17}) {
    greedy.set_n(bad);
    Streamed refused = testing::Generate(server.stub(), greedy);
    EXPECT_EQ(refused.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << bad;
    EXPECT_TRUE(absl::StrContains(refused.status.error_message(), "n must be in [1, 16]"))
        << refused.status.error_message();
  }
  Streamed after = testing::Generate(server.stub(), IdsRequest(ref.prompts[1], ref.greedy[1].size()));
  EXPECT_EQ(after.ids, ref.greedy[1]);
}

}  // namespace
}  // namespace loom
