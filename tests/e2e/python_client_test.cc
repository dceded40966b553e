// tools/loom_client.py, the example Python client generated from the .proto files with
// grpcio-tools, drives a real `loom serve`: a streaming Generate, GetStatus and a CollectiveRpc.
// Fails, saying why, when its interpreter cannot import grpcio-tools: tools/test.sh installs
// python3 (tools/setup.sh) and the client's packages in a virtual environment in the build dir.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "tests/e2e/model_dir.h"
#include "tests/e2e/serve_process.h"
#include "tests/test_paths.h"

namespace loom {
namespace {


TEST(PythonClientTest, StreamsAGenerationReadsStatusAndCallsEveryRank) {
  std::string out;
  if (testing::RunCommand(testing::TestPython() + " -c 'import grpc, grpc_tools'", &out) != 0) {
    FAIL() << "the example client needs grpcio-tools, which " << testing::TestPython()
           << " cannot import: " << out
           << "tools/test.sh installs it (into build/python-client, from "
              "tools/requirements-client.txt); or set LOOM_PYTHON to a python that has it";
  }
  const std::string model = testing::SourceDir() + "/tests/data/models/llama-gqa-f32";
  testing::Server server(absl::StrCat(
      "--model ", model, " --tp 2 --weight-dtype float32 --block-size 4 --kv-cache-memory 1M"));
  ASSERT_TRUE(server.ready()) << server.Log();
  const std::string client =
      absl::StrCat(testing::TestPython(), " ", testing::SourceDir(), "/tools/loom_client.py --json --address ",
                   server.address());

  std::ifstream in(model + "/reference.json");
  const nlohmann::json ref = nlohmann::json::parse(in).at("prompts").at(0);
  std::string ids;
  for (int32_t id : ref.at("prompt_ids")) absl::StrAppend(&ids, ids.empty() ? "" : ",", id);
  ASSERT_EQ(testing::RunCommand(
                client + " generate --ignore-eos --max-tokens 32 --prompt-ids " + ids, &out),
            0)
      << out;
  nlohmann::json generated = nlohmann::json::parse(out);
  EXPECT_EQ(generated.at("output_ids"), ref.at("greedy_ids"));
  EXPECT_EQ(generated.at("finish_reason"), "length");
  EXPECT_EQ(generated.at("completion_tokens"), 32);

  ASSERT_EQ(testing::RunCommand(client + " status", &out), 0) << out;
  nlohmann::json status = nlohmann::json::parse(out);
  EXPECT_EQ(status.at("tensor_parallel_size"), 2);
  ASSERT_EQ(status.at("ranks").size(), 2u);
  EXPECT_EQ(status.at("ranks")[1].at("state"), "ready");

  ASSERT_EQ(testing::RunCommand(client + " rpc describe", &out), 0) << out;
  nlohmann::json results = nlohmann::json::parse(out);
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results[1].at("result").at("rank"), 1);

  EXPECT_NE(testing::RunCommand(client + " rpc no_such_method", &out), 0);
  EXPECT_TRUE(absl::StrContains(out, "NOT_FOUND")) << out;

  // The typed weight wrappers: stage dummy weights, commit, see them serve; then back to the
  // checkpoint through update-config + reload-weights.
  ASSERT_EQ(testing::RunCommand(client + " stage-weights --load-format dummy", &out), 0) << out;
  EXPECT_EQ(nlohmann::json::parse(out)[0].at("result").at("staged_version"), 2) << out;
  ASSERT_EQ(testing::RunCommand(client + " commit-weights", &out), 0) << out;
  ASSERT_EQ(testing::RunCommand(client + " status", &out), 0) << out;
  status = nlohmann::json::parse(out);
  EXPECT_EQ(status.at("serving_weight_version"), 2);
  EXPECT_EQ(status.at("ranks")[0].at("dummy"), true);
  EXPECT_EQ(status.at("ranks")[1].at("load_format"), "dummy");
  ASSERT_EQ(testing::RunCommand(
                client + " generate --ignore-eos --max-tokens 32 --prompt-ids " + ids, &out),
            0)
      << out;
  EXPECT_NE(nlohmann::json::parse(out).at("output_ids"), ref.at("greedy_ids"));
  EXPECT_EQ(nlohmann::json::parse(out).at("weight_versions"), nlohmann::json::array({2}));
  ASSERT_EQ(testing::RunCommand(
                client + " update-config '{\"load_config\": {\"load_format\": \"auto\"}}'",
                &out),
            0)
      << out;
  ASSERT_EQ(testing::RunCommand(client + " reload-weights --mode in_place", &out), 0) << out;
  EXPECT_EQ(nlohmann::json::parse(out)[1].at("result").at("mode"), "in_place");
  ASSERT_EQ(testing::RunCommand(
                client + " generate --ignore-eos --max-tokens 32 --prompt-ids " + ids, &out),
            0)
      << out;
  EXPECT_EQ(nlohmann::json::parse(out).at("output_ids"), ref.at("greedy_ids"));
  EXPECT_EQ(nlohmann::json::parse(out).at("weight_versions"), nlohmann::json::array({3}));
  EXPECT_NE(testing::RunCommand(client + " commit-weights", &out), 0);
  EXPECT_TRUE(absl::StrContains(out, "nothing is staged")) << out;
}

}  // namespace
}  // namespace loom
