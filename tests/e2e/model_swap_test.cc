// A staged swap to another model directory, through a real `loom serve` on the war-and-peace
// model (../shared/fixtures): committing v2 over v1 serves v2's weights and status names v2;
// committing a directory with another tokenizer, eos id, generation defaults and a shorter
// context switches all of them at once (a text prompt is tokenized and detokenized with the new
// tokenizer); a directory of another shape or a longer context is refused at stage time, naming
// what differs, and the old model keeps serving.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "controller/tokenizer/tokenizer.h"
#include "loom/v1/loom.grpc.pb.h"
#include "tests/e2e/model_dir.h"
#include "tests/e2e/serve_process.h"
#include "tests/test_paths.h"

namespace loom {
namespace {

using nlohmann::json;
using testing::Server;

std::string WarAndPeace(const std::string& version) {
  return testing::SharedFixtures() + "/models/war-and-peace/" + version;
}

#define SKIP_WITHOUT_WAR_AND_PEACE()                                                    \
  if (!std::filesystem::exists(WarAndPeace("v1") + "/config.json") ||                  \
      !std::filesystem::exists(WarAndPeace("v2") + "/config.json")) {                  \
    GTEST_SKIP() << "the war-and-peace fixture model is absent (" << WarAndPeace("v1") \
                 << "); these tests need ../shared/fixtures beside the repository";     \
  }

// A random-weight model of war-and-peace's shape made by loom-make-model: its own byte-level
// tokenizer, another eos id, and `extra` flags (a context length, or another shape).
std::string SameShapeOtherTokenizer(const std::string& extra) {
  return testing::MakeModel(
      "--architecture Qwen3ForCausalLM --layers 4 --hidden 192 --heads 6 --kv-heads 2 "
      "--head-dim 32 --intermediate 512 --vocab 2048 --tie --qk-norm --rope-theta 10000 " +
      extra);
}

using Generated = testing::Streamed;
using testing::TextRequest;

Generated Generate(Server& server, const loom::v1::GenerateRequest& request) {
  return testing::Generate(server.stub(), request);
}

grpc::Status CallStatus(Server& server, const std::string& method, const json& args) {
  return testing::Call(server, method, args).status;
}

grpc::Status StageAndCommit(Server& server, const std::string& dir) {
  grpc::Status s = CallStatus(server, "stage_weights", {{"source", {{"model", dir}}}});
  if (!s.ok()) return s;
  return CallStatus(server, "commit_weights", json::object());
}

constexpr char kEngine[] = " --tp 2 --weight-dtype float32 --kv-cache-memory 16M";

TEST(ModelSwapTest, ACommitFromAnotherDirectorySwitchesEverythingTheModelOwns) {
  SKIP_WITHOUT_WAR_AND_PEACE();
  Server server(absl::StrCat("--model ", WarAndPeace("v1"), kEngine));
  ASSERT_TRUE(server.ready()) << server.Log();
  loom::v1::GetStatusResponse status = server.Status();
  EXPECT_EQ(status.model(), WarAndPeace("v1"));
  EXPECT_EQ(status.tokenizer(), WarAndPeace("v1") + "/tokenizer.json");
  EXPECT_EQ(std::vector<int64_t>(status.eos_token_ids().begin(), status.eos_token_ids().end()),
            std::vector<int64_t>{2045});
  EXPECT_EQ(status.max_model_len(), 2048);
  const Generated v1 = Generate(server, TextRequest("Prince Andrew", 24));
  ASSERT_TRUE(v1.status.ok()) << v1.status.error_message();

  // v1 -> v2: the same tokenizer, better weights.
  ASSERT_TRUE(StageAndCommit(server, WarAndPeace("v2")).ok());
  status = server.Status();
  EXPECT_EQ(status.model(), WarAndPeace("v2"));
  EXPECT_EQ(status.serving_weight_version(), 2u);
  const Generated v2 = Generate(server, TextRequest("Prince Andrew", 24));
  ASSERT_TRUE(v2.status.ok()) << v2.status.error_message();
  EXPECT_NE(v2.text, v1.text);
  // What HF transformers generates with v2 (fixture README).
  EXPECT_TRUE(absl::StartsWith(v2.text, ", who had been")) << v2.text;

  // v2 -> a directory with its own tokenizer, eos id, default max_tokens and a shorter context.
  const std::string other = SameShapeOtherTokenizer("--max-position 1024 --seed 9");
  {
    std::ifstream in(other + "/generation_config.json");
    json generation = json::parse(in);
    generation["max_new_tokens"] = 7;
    std::ofstream(other + "/generation_config.json") << generation.dump(2);
  }
  auto tokenizer = tokenizer::Tokenizer::FromModelDir(other);
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  const int64_t other_eos = *(*tokenizer)->eos_token_id();
  ASSERT_NE(other_eos, 2045);
  grpc::Status swapped = StageAndCommit(server, other);
  ASSERT_TRUE(swapped.ok()) << swapped.error_message();
  status = server.Status();
  EXPECT_EQ(status.model(), other);
  EXPECT_EQ(status.tokenizer(), other + "/tokenizer.json");
  EXPECT_EQ(std::vector<int64_t>(status.eos_token_ids().begin(), status.eos_token_ids().end()),
            std::vector<int64_t>{other_eos});
  EXPECT_EQ(status.max_model_len(), 1024);
  EXPECT_EQ(status.default_max_tokens(), 7);
  for (const auto& r : status.ranks()) EXPECT_EQ(r.weight_source(), other);

  const std::string prompt = "Prince Andrew";
  loom::v1::GenerateRequest request = TextRequest(prompt, 0);  // 0: the new default, 7
  const Generated out = Generate(server, request);
  ASSERT_TRUE(out.status.ok()) << out.status.error_message();
  ASSERT_EQ(out.ids.size(), 7u);
  auto prompt_ids = (*tokenizer)->Encode(prompt, true);
  ASSERT_TRUE(prompt_ids.ok());
  EXPECT_EQ(out.usage.prompt_tokens(), static_cast<int>(prompt_ids->size()));
  auto v1_tokenizer = tokenizer::Tokenizer::FromModelDir(WarAndPeace("v1"));
  ASSERT_TRUE(v1_tokenizer.ok());
  EXPECT_NE(prompt_ids->size(), (*v1_tokenizer)->Encode(prompt, true)->size());
  // Random weights sample ids above the small tokenizer's last one too; they add no text.
  std::vector<int32_t> known;
  for (int32_t id : out.ids) {
    if ((*tokenizer)->IdToToken(id)) known.push_back(id);
  }
  auto text = (*tokenizer)->Decode(known, true);
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_EQ(out.text, *text);
  // A prompt past the new max_model_len is refused.
  loom::v1::GenerateRequest too_long;
  for (int i = 0; i < 1100; ++i) too_long.add_prompt_ids(100);
  EXPECT_EQ(Generate(server, too_long).status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  std::string cli;
  ASSERT_EQ(testing::RunCommand(testing::BinaryDir() + "/tools/loom status --address " +
                                    server.address(),
                                &cli),
            0)
      << cli;
  EXPECT_TRUE(absl::StrContains(cli, "model " + other)) << cli;
  EXPECT_TRUE(absl::StrContains(cli, "max_model_len 1024")) << cli;
}

TEST(ModelSwapTest, ADirectoryTheRanksCannotServeIsRefusedAtStageAndTheOldModelServes) {
  SKIP_WITHOUT_WAR_AND_PEACE();
  Server server(absl::StrCat("--model ", WarAndPeace("v1"), kEngine));
  ASSERT_TRUE(server.ready()) << server.Log();
  const Generated before = Generate(server, TextRequest("Prince Andrew", 16));
  ASSERT_TRUE(before.status.ok()) << before.status.error_message();

  struct Case {
    std::string dir;
    std::string expect;  // in the error
  };
  const std::vector<Case> cases = {
      {testing::MakeModel("--preset tiny"), "hidden_size"},
      {SameShapeOtherTokenizer("--layers 2"), "num_hidden_layers"},
      {SameShapeOtherTokenizer("--max-position 4096"), "context length"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.dir);
    grpc::Status s = CallStatus(server, "stage_weights", {{"source", {{"model", c.dir}}}});
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_TRUE(absl::StrContains(s.error_message(), c.expect)) << s.error_message();
    EXPECT_TRUE(absl::StrContains(s.error_message(), c.dir)) << s.error_message();
    // Refused by the controller before any rank loaded anything.
    EXPECT_FALSE(absl::StrContains(s.error_message(), "rank 0")) << s.error_message();
  }
  const loom::v1::GetStatusResponse status = server.Status();
  EXPECT_EQ(status.model(), WarAndPeace("v1"));
  EXPECT_EQ(status.staged_weight_version(), 0u);
  EXPECT_EQ(status.serving_weight_version(), 1u);
  for (const auto& r : status.ranks()) EXPECT_EQ(r.weight_state(), "ready");
  const Generated after = Generate(server, TextRequest("Prince Andrew", 16));
  ASSERT_TRUE(after.status.ok()) << after.status.error_message();
  EXPECT_EQ(after.ids, before.ids);
  EXPECT_EQ(after.text, before.text);
}

}  // namespace
}  // namespace loom
