// --max-waiting: with the engine's one seat taken and the waiting queue full, a request is
// refused (ResourceExhausted: HTTP 429, gRPC RESOURCE_EXHAUSTED) and the others still finish.
#include <gtest/gtest.h>

#include <chrono>

#include "controller/in_process_executor.h"
#include "tests/test_paths.h"

namespace loom {
namespace {

TEST(MaxWaitingTest, AFullWaitingQueueRefusesAndTheRestFinish) {
  ServingEngineOptions options;
  options.config.load.model = testing::SourceDir() + "/tests/data/models/llama-gqa-f32";
  options.config.scheduler.max_num_seqs = 1;
  options.max_waiting = 2;
  auto engine = StartInProcessEngine(options);
  ASSERT_TRUE(engine.ok()) << engine.status();
  auto request = [](int64_t tokens) {
    ServingRequest r;
    r.generation.prompt_ids = {1, 2, 3};
    r.generation.max_tokens = tokens;
    r.generation.ignore_eos = true;
    return r;
  };
  auto running = (*engine)->Submit(request(400));
  ASSERT_TRUE(running.ok());
  GenerateDelta first;
  ASSERT_TRUE((*running)->Next(&first, std::chrono::seconds(30)));  // it holds the one seat
  auto second = (*engine)->Submit(request(2));
  auto third = (*engine)->Submit(request(2));
  ASSERT_TRUE(second.ok() && third.ok());
  auto fourth = (*engine)->Submit(request(2));
  ASSERT_EQ(fourth.status().code(), absl::StatusCode::kResourceExhausted) << fourth.status();
  EXPECT_NE(fourth.status().message().find("--max-waiting 2"), std::string::npos);
  for (auto* s : {&*running, &*second, &*third}) {
    auto done = WaitForCompletion(**s);
    EXPECT_TRUE(done.ok()) << done.status();
  }
  // Room again.
  auto later = (*engine)->Submit(request(2));
  ASSERT_TRUE(later.ok()) << later.status();
  EXPECT_TRUE(WaitForCompletion(**later).ok());
}

}  // namespace
}  // namespace loom
