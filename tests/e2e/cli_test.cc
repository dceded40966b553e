// The `loom` command line as a user runs it: help, generation, and clear errors with non-zero
// exits on bad input.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "absl/strings/str_join.h"
#include "kernels/execution_context.h"
#include "tests/e2e/model_dir.h"
#include "tests/test_paths.h"

namespace loom {
namespace {

std::string Loom() { return testing::BinaryDir() + "/tools/loom"; }

TEST(CliTest, HelpExplainsEveryVerb) {
  std::string out;
  EXPECT_EQ(testing::RunCommand(Loom() + " --help", &out), 0);
  EXPECT_NE(out.find("generate"), std::string::npos);
  EXPECT_NE(out.find("bench"), std::string::npos);
  EXPECT_EQ(testing::RunCommand(Loom() + " generate --help", &out), 0);
  EXPECT_NE(out.find("--prompt-ids"), std::string::npos);
  EXPECT_NE(out.find("--kv-cache-memory"), std::string::npos);
  EXPECT_EQ(testing::RunCommand(Loom() + " bench --help", &out), 0);
}

TEST(CliTest, GeneratePrintsTheSameTokensAsTheReference) {
  const std::string model = testing::FixtureModel();
  const testing::HfReference ref = testing::ReadHfReference(model);
  std::string out;
  ASSERT_EQ(testing::RunCommand(Loom() + " generate --model " + model + " --prompt-ids " +
                                    absl::StrJoin(ref.prompts[0], ",") + " --prompt-ids " +
                                    absl::StrJoin(ref.prompts[1], ",") +
                                    " --max-tokens 5 --ignore-eos --json 2>/dev/null",
                                &out),
            0)
      << out;
  // One JSON object per prompt, in order, after the engine's line on stderr.
  std::vector<nlohmann::json> lines;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line[0] == '{') lines.push_back(nlohmann::json::parse(line));
  }
  ASSERT_EQ(lines.size(), 2u) << out;
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(lines[i].at("prompt"), i);
    EXPECT_EQ(lines[i].at("output_ids").get<std::vector<int32_t>>(),
              std::vector<int32_t>(ref.greedy[i].begin(), ref.greedy[i].begin() + 5));
    EXPECT_EQ(lines[i].at("finish_reason"), "length");
  }
}

struct BadCall {
  std::string args;
  int exit_code;
  std::string message;
};

TEST(CliTest, BadInputGetsAClearErrorAndNonZeroExit) {
  const std::string model = testing::FixtureModel();
  const std::vector<BadCall> calls = {
      {"frobnicate", 2, "unknown command"},
      {"generate --prompt-ids 1,2", 1, "--model"},
      {"generate --model " + model, 1, "--prompt-ids"},
      {"generate --model " + model + " --prompt-ids 1,x", 1, "not an integer"},
      {"generate --model " + model + " --prompt-ids 1 --max-tokens many", 1, "not an integer"},
      {"generate --model " + model + " --prompt-ids 1 --bogus", 2, "unknown flag --bogus"},
      {"generate --model " + model + " --prompt-ids 1 --temperature -2", 1, "temperature"},
      {"generate --model " + model + " --prompt-ids 1 --top-p 0", 1, "top_p"},
      {"generate --model " + model + " --prompt-ids 99999999", 1, "outside"},
      {"generate --model " + model + " --prompt-ids 1 --kv-cache-memory lots", 1, "not a size"},
      {"generate --model " + model + " --prompt-ids 1 --weight-dtype int8", 1, "unsupported"},
      {"generate --model /nonexistent/model --prompt-ids 1", 1, "/nonexistent/model"},
      {"generate --model " + model + " --prompt-ids", 2, "needs a value"},
      {"generate --model " + model + " --prompt-ids 1 --device tpu", 1, "unknown device \"tpu\""},
      {"generate --model " + model + " --prompt-ids 1 --device cuda:-1", 1, "unknown device"},
      {"generate --model " + model + " --prompt-ids 1 --gpu-memory-utilization 1.5", 1,
       "gpu_memory_utilization must be in (0, 1]"},
      {"generate --model " + model + " --prompt-ids 1 --staging-memory some", 1,
       "staging_memory must be auto or none"},
      {"serve --model " + model + " --port 0 --tp 2 --device cuda:0", 1, "device cuda:0: "},
  };
  for (const BadCall& c : calls) {
    std::string out;
    EXPECT_EQ(testing::RunCommand(Loom() + " " + c.args, &out), c.exit_code) << c.args << "\n"
                                                                             << out;
    EXPECT_NE(out.find(c.message), std::string::npos) << c.args << "\n" << out;
  }
}

// A GPU asked for where there is none: the error names the rank and the device, the exit is
// non-zero (the supervisor tests check that no worker outlives a failed start).
TEST(CliTest, CudaWithoutAGpuIsAClearErrorAndLeavesNoWorkers) {
  if (kernels::VisibleCudaDevices() > 0) {
    GTEST_SKIP() << "this host has a GPU; the no-GPU error cannot be provoked here";
  }
  const std::string model = testing::FixtureModel();
  std::string out;
  EXPECT_EQ(testing::RunCommand(
                Loom() + " generate --model " + model + " --prompt-ids 1,2 --device cuda", &out),
            1);
  EXPECT_NE(out.find("rank 0: device cuda: no CUDA device is visible"), std::string::npos) << out;
  EXPECT_EQ(testing::RunCommand(
                Loom() + " serve --model " + model + " --port 0 --tp 2 --device cuda", &out),
            1);
  EXPECT_NE(out.find("rank 1: device cuda: no CUDA device is visible"), std::string::npos) << out;
  EXPECT_NE(out.find("workers failed to start"), std::string::npos) << out;
}

}  // namespace
}  // namespace loom
