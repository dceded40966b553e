// The official openai Python SDK against a real `loom serve` (tests/e2e/scripts/
// openai_sdk_check.py): completions and chat, whole and streamed, n, logprobs, stop, usage, and
// the SDK's own error classes, compared with the gRPC API's greedy text.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "tests/e2e/model_dir.h"
#include "tests/e2e/serve_process.h"
#include "tests/test_paths.h"

namespace loom {
namespace {


TEST(OpenAiSdkTest, TheOfficialClientGetsTheGrpcApisText) {
  std::string out;
  if (testing::RunCommand(testing::TestPython() + " -c 'import openai'", &out) != 0) {
    FAIL() << testing::TestPython() << " cannot import openai: " << out
           << "tools/test.sh installs it (build/python-client, tools/requirements-client.txt)";
  }
  const std::string model = testing::SourceDir() + "/models/war-and-peace/v2";
  if (!std::filesystem::exists(model + "/config.json")) GTEST_SKIP() << "absent: " << model;
  testing::Server server("--model " + model + " --served-model-name wp");
  ASSERT_TRUE(server.ready()) << server.Log();
  ASSERT_FALSE(server.http_address().empty());
  ASSERT_EQ(testing::RunCommand(absl::StrCat(testing::TestPython(), " ", testing::SourceDir(),
                                             "/tests/e2e/scripts/openai_sdk_check.py http://",
                                             server.http_address(), "/v1 wp"),
                                &out),
            0)
      << out;
  const nlohmann::json r = nlohmann::json::parse(out.substr(out.find('{')));
  EXPECT_EQ(r["models"], nlohmann::json::array({"wp"}));
  const testing::Streamed grpc =
      testing::Generate(server.stub(), testing::TextRequest("Well, Prince", 16));
  ASSERT_TRUE(grpc.status.ok());
  EXPECT_EQ(r["completion"]["text"], grpc.text);
  EXPECT_EQ(r["completion"]["finish"], "length");
  EXPECT_EQ(r["completion"]["usage"], 16);
  EXPECT_EQ(r["completion"]["fingerprint"], absl::StrCat("loom-wv", grpc.versions.back()));
  EXPECT_EQ(r["completion_stream"]["text"], grpc.text);
  EXPECT_EQ(r["completion_stream"]["usage"], 16);
  EXPECT_EQ(r["n2"]["choices"], 2);
  EXPECT_EQ(r["chat"]["role"], "assistant");
  EXPECT_EQ(r["chat"]["usage"], 12);
  EXPECT_EQ(r["chat_stream"], r["chat"]["content"]);
  EXPECT_EQ(r["bad"]["status"], 400) << r.dump();
  EXPECT_EQ(r["unknown_model"], 404) << r.dump();
}

}  // namespace
}  // namespace loom
