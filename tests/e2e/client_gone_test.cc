// Clients that go away, through a real `loom serve`: 8 cancelled Generate streams are aborted
// within one step of the cancel arriving (the step counter says so), their KV blocks are free,
// they count as finished with "abort", and the server still serves. A passed deadline and a
// killed client process (a disconnect) end their sequences the same way.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <thread>

#include "absl/strings/str_cat.h"
#include "loom/v1/loom.grpc.pb.h"
#include "tests/e2e/model_dir.h"
#include "tests/e2e/serve_process.h"
#include "tests/test_paths.h"

namespace loom {
namespace {

using Clock = std::chrono::steady_clock;
using testing::Server;

// Big enough that a decode step of 8 sequences takes milliseconds, not microseconds, so "within
// one step" is a tight bound next to the time a cancel takes to travel.
std::string SlowStepModel() {
  static const std::string dir = testing::MakeModel(
      "--preset tiny --layers 8 --hidden 512 --heads 8 --kv-heads 4 --head-dim 64 "
      "--intermediate 1536 --vocab 4096 --max-position 4096 --seed 5");
  return dir;
}

loom::v1::GenerateRequest LongRequest(int i) {
  loom::v1::GenerateRequest request;
  for (int t = 0; t < 5; ++t) request.add_prompt_ids(10 + 7 * i + t);
  request.set_max_tokens(3000);
  request.set_ignore_eos(true);
  return request;
}

// Polls GetStatus until no request runs; the last status, or the one at `timeout`.
loom::v1::GetStatusResponse WaitForNoneRunning(Server& server, std::chrono::seconds timeout) {
  const auto deadline = Clock::now() + timeout;
  loom::v1::GetStatusResponse s = server.Status();
  while (s.running_requests() + s.waiting_requests() > 0 && Clock::now() < deadline) {
    s = server.Status();
  }
  return s;
}

class ClientGoneTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = new Server(absl::StrCat("--model ", SlowStepModel(),
                                      " --tp 1 --weight-dtype float32 --kv-cache-memory 64M"));
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override { ASSERT_TRUE(server_->ready()) << server_->Log(); }

  static Server* server_;
};
Server* ClientGoneTest::server_ = nullptr;

TEST_F(ClientGoneTest, EightCancelledStreamsAreAbortedWithinOneStepAndFreeTheirBlocks) {
  constexpr int kClients = 8;
  const loom::v1::GetStatusResponse before = server_->Status();
  ASSERT_EQ(before.num_free_kv_blocks(), before.num_kv_blocks());

  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<grpc::Status> ends(kClients);
  std::vector<int> tokens(kClients, 0);
  std::atomic<int> streaming{0};
  std::vector<std::thread> clients;
  for (int i = 0; i < kClients; ++i) {
    contexts.push_back(std::make_unique<grpc::ClientContext>());
    // Generous: the cancel, not the deadline, must end them.
    contexts[i]->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(300));
  }
  for (int i = 0; i < kClients; ++i) {
    clients.emplace_back([&, i] {
      auto reader = server_->stub().Generate(contexts[i].get(), LongRequest(i));
      loom::v1::GenerateResponse response;
      bool first = true;
      while (reader->Read(&response)) {
        tokens[i] += response.token_ids_size();
        if (first) ++streaming;
        first = false;
      }
      ends[i] = reader->Finish();
    });
  }
  const auto wait_until = Clock::now() + std::chrono::seconds(60);
  while (streaming.load() < kClients && Clock::now() < wait_until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  ASSERT_EQ(streaming.load(), kClients) << server_->Log();
  // The step time, for the report: steps over half a second of decoding.
  const loom::v1::GetStatusResponse rate_from = server_->Status();
  const auto rate_from_at = Clock::now();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const loom::v1::GetStatusResponse running = server_->Status();
  const double step_ms =
      std::chrono::duration<double, std::milli>(Clock::now() - rate_from_at).count() /
      std::max<uint64_t>(1, running.steps() - rate_from.steps());
  ASSERT_EQ(running.running_requests(), kClients);
  EXPECT_LT(running.num_free_kv_blocks(), running.num_kv_blocks());

  const auto cancelled_at = Clock::now();
  for (auto& context : contexts) context->TryCancel();
  const loom::v1::GetStatusResponse after = WaitForNoneRunning(*server_, std::chrono::seconds(30));
  const auto none_running_at = Clock::now();
  for (std::thread& t : clients) t.join();

  ASSERT_EQ(after.running_requests(), 0) << "still running 30 s after the cancel";
  // The step running when the cancels arrived may finish; no step after it has them. One more
  // allows for a step boundary between `running` being read and the cancels arriving.
  const uint64_t steps = after.steps() - running.steps();
  EXPECT_LE(steps, 2u) << "steps run between reading the status and 0 running";
  const double ms =
      std::chrono::duration<double, std::milli>(none_running_at - cancelled_at).count();
  std::printf("cancel -> 0 running: %.1f ms (status polls included), %llu steps from the status "
              "read before the cancel; a step takes %.1f ms\n",
              ms, static_cast<unsigned long long>(steps), step_ms);
  RecordProperty("cancel_to_zero_running_ms", static_cast<int>(ms));
  EXPECT_EQ(after.num_free_kv_blocks(), after.num_kv_blocks());
  EXPECT_EQ(after.finished().abort() - before.finished().abort(), kClients);
  for (int i = 0; i < kClients; ++i) {
    EXPECT_EQ(ends[i].error_code(), grpc::StatusCode::CANCELLED) << i;
    EXPECT_LT(tokens[i], 3000) << i;
  }

  // The server still serves.
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  loom::v1::GenerateRequest small = LongRequest(0);
  small.set_max_tokens(4);
  auto reader = server_->stub().Generate(&context, small);
  loom::v1::GenerateResponse response;
  int got = 0;
  std::string finish;
  while (reader->Read(&response)) {
    got += response.token_ids_size();
    if (!response.finish_reason().empty()) finish = response.finish_reason();
  }
  ASSERT_TRUE(reader->Finish().ok());
  EXPECT_EQ(got, 4);
  EXPECT_EQ(finish, "length");
}

TEST_F(ClientGoneTest, APassedDeadlineAbortsTheSequence) {
  const loom::v1::GetStatusResponse before = server_->Status();
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(500));
  auto reader = server_->stub().Generate(&context, LongRequest(1));
  loom::v1::GenerateResponse response;
  while (reader->Read(&response)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  const loom::v1::GetStatusResponse after = WaitForNoneRunning(*server_, std::chrono::seconds(30));
  EXPECT_EQ(after.running_requests(), 0);
  EXPECT_EQ(after.finished().abort() - before.finished().abort(), 1);
  EXPECT_EQ(after.num_free_kv_blocks(), after.num_kv_blocks());
}

TEST_F(ClientGoneTest, AKilledClientProcessAbortsItsSequence) {
  const loom::v1::GetStatusResponse before = server_->Status();
  const pid_t client = testing::SpawnTiedChild(
      {testing::BinaryDir() + "/tools/loom", "generate", "--address", server_->address(),
       "--prompt-ids", "11,12,13", "--max-tokens", "3000", "--ignore-eos"});
  ASSERT_GT(client, 0);
  const auto wait_until = Clock::now() + std::chrono::seconds(60);
  while (server_->Status().running_requests() == 0 && Clock::now() < wait_until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_EQ(server_->Status().running_requests(), 1);
  kill(client, SIGKILL);  // its connection closes without a cancel
  waitpid(client, nullptr, 0);
  const loom::v1::GetStatusResponse after = WaitForNoneRunning(*server_, std::chrono::seconds(30));
  EXPECT_EQ(after.running_requests(), 0);
  EXPECT_EQ(after.finished().abort() - before.finished().abort(), 1);
  EXPECT_EQ(after.num_free_kv_blocks(), after.num_kv_blocks());
}

}  // namespace
}  // namespace loom
