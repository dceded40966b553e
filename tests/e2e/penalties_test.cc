// Sampling penalties against HF transformers (tools/make_penalty_fixtures.py): greedy
// continuations under HF's repetition penalty and OpenAI's presence and frequency penalties,
// in process and through `loom serve`'s gRPC and HTTP APIs.
#include <httplib.h>

#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "absl/strings/str_split.h"
#include "tests/e2e/http_client.h"
#include "tests/e2e/in_process.h"
#include "tests/e2e/serve_process.h"
#include "tests/test_paths.h"

namespace loom {
namespace {

using nlohmann::json;

json Reference() {
  std::ifstream in(testing::SourceDir() + "/tests/data/penalties/reference.json");
  return json::parse(in);
}

GenerationRequest Request(const json& c) {
  GenerationRequest r;
  r.prompt_ids = c["prompt_ids"].get<std::vector<int32_t>>();
  r.max_tokens = static_cast<int64_t>(c["greedy_ids"].size());
  r.ignore_eos = true;
  const json& p = c["penalties"];
  r.sampling.repetition_penalty = p.value("repetition_penalty", 1.0f);
  r.sampling.presence_penalty = p.value("presence_penalty", 0.0f);
  r.sampling.frequency_penalty = p.value("frequency_penalty", 0.0f);
  return r;
}

TEST(PenaltiesTest, GreedyContinuationsEqualTransformersInProcess) {
  const json ref = Reference();
  std::map<std::string, std::vector<json>> by_model;
  for (const json& c : ref["cases"]) by_model[c["model"]].push_back(c);
  for (const auto& [model, cases] : by_model) {
    EngineConfig config;
    config.load.model = testing::SourceDir() + "/" + model;
    config.load.weight_dtype = DType::kF32;
    auto engine = testing::StartEngine(config);
    ASSERT_TRUE(engine.ok()) << engine.status();
    std::vector<GenerationRequest> requests;
    for (const json& c : cases) requests.push_back(Request(c));
    auto done = testing::GenerateAll(**engine, requests);  // batched together
    ASSERT_TRUE(done.ok()) << done.status();
    for (size_t i = 0; i < cases.size(); ++i) {
      EXPECT_EQ((*done)[i].token_ids, cases[i]["greedy_ids"].get<std::vector<int32_t>>())
          << model << " " << cases[i]["penalties"].dump() << " prompt "
          << cases[i]["prompt_ids"].dump();
    }
    // Without penalties the continuations differ (the cases test something).
    GenerationRequest plain = requests[0];
    plain.sampling = SamplingParams{};
    auto unpenalised = testing::GenerateAll(**engine, {plain});
    ASSERT_TRUE(unpenalised.ok());
    EXPECT_NE((*unpenalised)[0].token_ids, (*done)[0].token_ids) << model;
  }
}

TEST(PenaltiesTest, TheServersGrpcAndHttpApisApplyThemToo) {
  const json ref = Reference();
  const json& c = ref["cases"][2];  // presence + frequency on the trained model
  ASSERT_EQ(c["model"], "models/war-and-peace/v2");
  testing::Server server("--model " + testing::SourceDir() + "/" +
                         c["model"].get<std::string>() + " --served-model-name wp --tp 2");
  ASSERT_TRUE(server.ready()) << server.Log();
  loom::v1::GenerateRequest request =
      testing::IdsRequest(c["prompt_ids"].get<std::vector<int32_t>>(),
                          static_cast<int>(c["greedy_ids"].size()));
  request.set_presence_penalty(c["penalties"]["presence_penalty"]);
  request.set_frequency_penalty(c["penalties"]["frequency_penalty"]);
  const testing::Streamed grpc = testing::Generate(server.stub(), request);
  ASSERT_TRUE(grpc.status.ok()) << grpc.status.error_message();
  EXPECT_EQ(grpc.ids, c["greedy_ids"].get<std::vector<int32_t>>());

  httplib::Client http = testing::HttpClient(server.http_address());
  json body = {{"model", "wp"}, {"prompt", c["prompt_ids"]}, {"max_tokens", c["greedy_ids"].size()},
               {"temperature", 0}, {"ignore_eos", true}, {"logprobs", 0},
               {"presence_penalty", c["penalties"]["presence_penalty"]},
               {"frequency_penalty", c["penalties"]["frequency_penalty"]}};
  auto r = http.Post("/v1/completions", body.dump(), "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  const testing::Streamed expected_text = testing::Generate(server.stub(), request);
  EXPECT_EQ(json::parse(r->body)["choices"][0]["text"], expected_text.text);
  // Out of range: refused with the field named.
  body["presence_penalty"] = 3;
  auto bad = http.Post("/v1/completions", body.dump(), "application/json");
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 400);
  EXPECT_EQ(json::parse(bad->body)["error"]["param"], "presence_penalty");
  request.set_repetition_penalty(-1);
  EXPECT_EQ(testing::Generate(server.stub(), request).status.error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

}  // namespace
}  // namespace loom
