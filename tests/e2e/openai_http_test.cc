// The OpenAI-compatible HTTP API of a real `loom serve` on the trained War and Peace model,
// through a real HTTP client: completions (whole and streamed) equal the gRPC API's, the
// auxiliary endpoints, errors in OpenAI's shape that leave the server serving, 64 concurrent
// streams, and a client that goes away aborting its sequence.
#include <httplib.h>

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "controller/openai/chat_request.h"
#include "tests/e2e/http_client.h"
#include "tests/e2e/serve_process.h"
#include "tests/test_paths.h"

namespace loom {
namespace {

using nlohmann::json;
using testing::Server;

std::string Model() { return testing::SourceDir() + "/models/war-and-peace/v2"; }

class OpenAiHttpTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!std::filesystem::exists(Model() + "/config.json")) return;
    server_ = new Server("--model " + Model() + " --served-model-name wp --max-num-seqs 64");
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override {
    if (server_ == nullptr) GTEST_SKIP() << "the war-and-peace model is absent: " << Model();
    ASSERT_TRUE(server_->ready()) << server_->Log();
    ASSERT_FALSE(server_->http_address().empty()) << server_->Log();
  }
  static httplib::Client Client() {
    return testing::HttpClient(server_->http_address());
  }
  // POST `body` and return (status, parsed body).
  static std::pair<int, json> Post(const std::string& path, const std::string& body) {
    httplib::Client c = Client();
    httplib::Result r = c.Post(path.c_str(), body, "application/json");
    if (!r) return {-1, json()};
    return {r->status, json::parse(r->body, nullptr, false)};
  }
  static json Completion(json request) {
    request["model"] = "wp";
    auto [status, body] = Post("/v1/completions", request.dump());
    EXPECT_EQ(status, 200) << body.dump();
    return body;
  }
  // The SSE events of a streamed completion, [DONE] excluded (and checked to end the stream).
  static std::vector<json> Stream(json request) {
    request["model"] = "wp";
    request["stream"] = true;
    httplib::Client c = Client();
    httplib::Result r = c.Post("/v1/completions", request.dump(), "application/json");
    // A burst of connects can outrun the listen backlog (cpp-httplib 0.11's is 5): a request
    // that got no response at all is sent again, as OpenAI's SDK does.
    if (!r) r = Client().Post("/v1/completions", request.dump(), "application/json");
    std::vector<json> events;
    if (!r) {
      ADD_FAILURE() << "no response: " << httplib::to_string(r.error());
      return events;
    }
    EXPECT_EQ(r->status, 200) << r->body;
    EXPECT_TRUE(absl::StartsWith(r->get_header_value("Content-Type"), "text/event-stream"));
    bool done = false;
    for (absl::string_view line : absl::StrSplit(r->body, "\n\n", absl::SkipEmpty())) {
      EXPECT_TRUE(absl::StartsWith(line, "data: ")) << line;
      EXPECT_FALSE(done) << "an event after [DONE]";
      const std::string data(line.substr(6));
      if (data == "[DONE]") {
        done = true;
        continue;
      }
      events.push_back(json::parse(data));
    }
    EXPECT_TRUE(done) << r->body;
    return events;
  }
  static Server* server_;
};

Server* OpenAiHttpTest::server_ = nullptr;

TEST_F(OpenAiHttpTest, ModelsHealthAndVersionDescribeTheServer) {
  httplib::Client c = Client();
  auto models = c.Get("/v1/models");
  ASSERT_TRUE(models);
  EXPECT_EQ(models->status, 200);
  const json m = json::parse(models->body);
  ASSERT_EQ(m["data"].size(), 1u);
  EXPECT_EQ(m["data"][0]["id"], "wp");
  EXPECT_GT(m["data"][0]["max_model_len"].get<int64_t>(), 0);
  auto health = c.Get("/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200) << health->body;
  const json h = json::parse(health->body);
  EXPECT_EQ(h["status"], "ok");
  EXPECT_EQ(h["dummy_weights"], false);
  EXPECT_GE(h["weight_version"].get<uint64_t>(), 1u);
  auto version = c.Get("/version");
  ASSERT_TRUE(version);
  EXPECT_EQ(version->status, 200);
}

TEST_F(OpenAiHttpTest, AGreedyCompletionIsTheGrpcApisTextWholeAndStreamed) {
  const std::string prompt = "Well, Prince, so Genoa and Lucca are now";
  const testing::Streamed grpc = testing::Generate(server_->stub(), testing::TextRequest(prompt, 24));
  ASSERT_TRUE(grpc.status.ok()) << grpc.status.error_message();
  const json whole = Completion({{"prompt", prompt}, {"max_tokens", 24}, {"temperature", 0},
                                 {"ignore_eos", true}});
  ASSERT_EQ(whole["choices"].size(), 1u);
  EXPECT_EQ(whole["object"], "text_completion");
  EXPECT_EQ(whole["model"], "wp");
  EXPECT_EQ(whole["choices"][0]["text"], grpc.text);
  EXPECT_EQ(whole["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(whole["usage"]["completion_tokens"], 24);
  EXPECT_EQ(whole["usage"]["prompt_tokens"], grpc.usage.prompt_tokens());
  EXPECT_EQ(whole["usage"]["total_tokens"], grpc.usage.prompt_tokens() + 24);
  const uint64_t version = whole["weight_version"].get<uint64_t>();
  EXPECT_EQ(version, grpc.versions.back());
  EXPECT_EQ(whole["system_fingerprint"], absl::StrCat("loom-wv", version));

  const std::vector<json> events = Stream({{"prompt", prompt}, {"max_tokens", 24},
                                           {"temperature", 0}, {"ignore_eos", true},
                                           {"stream_options", {{"include_usage", true}}}});
  ASSERT_GE(events.size(), 2u);
  std::string text;
  for (size_t i = 0; i + 1 < events.size(); ++i) {
    ASSERT_EQ(events[i]["choices"].size(), 1u);
    text += events[i]["choices"][0]["text"].get<std::string>();
    EXPECT_EQ(events[i]["weight_version"], version);
  }
  EXPECT_EQ(text, grpc.text);
  EXPECT_EQ(events[events.size() - 2]["choices"][0]["finish_reason"], "length");
  // The usage chunk: no choices, the same counts.
  EXPECT_TRUE(events.back()["choices"].empty());
  EXPECT_EQ(events.back()["usage"]["completion_tokens"], 24);
}

TEST_F(OpenAiHttpTest, StopStringsTokenIdsNAndLogprobs) {
  const json stopped = Completion({{"prompt", "The"}, {"max_tokens", 40}, {"temperature", 0},
                                   {"stop", {" the", "\n"}}, {"ignore_eos", true}});
  const std::string text = stopped["choices"][0]["text"];
  EXPECT_FALSE(absl::StrContains(text, " the")) << text;
  EXPECT_EQ(stopped["choices"][0]["finish_reason"], "stop") << text;

  // Token ids as the prompt; two sampled choices that differ by seed; logprobs per token.
  const json two = Completion({{"prompt", {1, 20, 30, 40}}, {"max_tokens", 8}, {"n", 2},
                               {"temperature", 1.0}, {"seed", 7}, {"logprobs", 2},
                               {"ignore_eos", true}});
  ASSERT_EQ(two["choices"].size(), 2u);
  EXPECT_EQ(two["choices"][0]["index"], 0);
  EXPECT_EQ(two["choices"][1]["index"], 1);
  EXPECT_EQ(two["usage"]["completion_tokens"], 16);
  for (const json& choice : two["choices"]) {
    const json& lp = choice["logprobs"];
    ASSERT_EQ(lp["tokens"].size(), 8u) << lp.dump();
    ASSERT_EQ(lp["token_logprobs"].size(), 8u);
    ASSERT_EQ(lp["top_logprobs"].size(), 8u);
    for (const json& lp_value : lp["token_logprobs"]) EXPECT_LE(lp_value.get<double>(), 0.0);
    EXPECT_LE(lp["top_logprobs"][0].size(), 2u);
  }
  // The same seed gives the same choice again.
  const json again = Completion({{"prompt", {1, 20, 30, 40}}, {"max_tokens", 8}, {"n", 2},
                                 {"temperature", 1.0}, {"seed", 7}, {"ignore_eos", true}});
  EXPECT_EQ(again["choices"][0]["text"], two["choices"][0]["text"]);
  EXPECT_EQ(again["choices"][1]["text"], two["choices"][1]["text"]);
}

TEST_F(OpenAiHttpTest, BadRequestsGetOpenAiErrorsAndTheServerServesOn) {
  struct Bad {
    std::string body;
    int status;
    std::string param;
  };
  const std::string long_prompt(300000, 'x');
  const std::vector<Bad> bad = {
      {"{not json", 400, ""},
      {R"({"model": "wp"})", 400, "prompt"},
      {R"({"model": "gpt-4", "prompt": "a"})", 404, ""},
      {R"({"model": "wp", "prompt": "a", "n": 17})", 400, "n"},
      {R"({"model": "wp", "prompt": "a", "max_tokens": 0})", 400, "max_tokens"},
      {R"({"model": "wp", "prompt": "a", "temperature": -1})", 400, "temperature"},
      {R"({"model": "wp", "prompt": "a", "top_p": 0})", 400, "top_p"},
      {R"({"model": "wp", "prompt": "a", "stop": 5})", 400, "stop"},
      {R"({"model": "wp", "prompt": "a", "logprobs": 50})", 400, "logprobs"},
      {R"({"model": "wp", "prompt": [1, -2]})", 400, "prompt"},
      {R"({"model": "wp", "prompt": "a", "max_tokens": "many"})", 400, "max_tokens"},
      {R"({"model": "wp", "prompt": "a", "presence_penalty": 2.5})", 400, "presence_penalty"},
      {R"({"model": "wp", "prompt": "a", "repetition_penalty": 0})", 400, "repetition_penalty"},
      {json({{"model", "wp"}, {"prompt", long_prompt}}).dump(), 400, ""},
      {std::string(9 << 20, ' '), 413, ""},
  };
  for (const Bad& b : bad) {
    auto [status, body] = Post("/v1/completions", b.body);
    EXPECT_EQ(status, b.status) << b.body.substr(0, 80) << " -> " << body.dump();
    ASSERT_TRUE(body.contains("error")) << body.dump();
    EXPECT_TRUE(body["error"]["message"].is_string());
    EXPECT_TRUE(body["error"]["type"].is_string());
    if (!b.param.empty()) EXPECT_EQ(body["error"]["param"], b.param) << body.dump();
  }
  httplib::Client c = Client();
  auto unknown = c.Get("/v2/nothing");
  ASSERT_TRUE(unknown);
  EXPECT_EQ(unknown->status, 404);
  EXPECT_TRUE(json::parse(unknown->body).contains("error"));
  auto chat = Post("/v1/chat/completions", R"({"model": "wp", "messages": []})");
  EXPECT_EQ(chat.first, 400);
  // Still serving.
  const json ok = Completion({{"prompt", "The"}, {"max_tokens", 2}});
  EXPECT_EQ(ok["choices"].size(), 1u);
}

TEST_F(OpenAiHttpTest, TokenizeDetokenizeAndMetrics) {
  // A request first, so that the latencies have something to count.
  Completion({{"prompt", "The"}, {"max_tokens", 3}, {"ignore_eos", true}});
  auto [status, tokens] = Post("/tokenize", R"({"prompt": "Natasha danced."})");
  ASSERT_EQ(status, 200) << tokens.dump();
  ASSERT_GT(tokens["count"].get<int>(), 0);
  auto [back_status, back] = Post("/detokenize", json({{"tokens", tokens["tokens"]}}).dump());
  ASSERT_EQ(back_status, 200) << back.dump();
  EXPECT_TRUE(absl::StrContains(back["prompt"].get<std::string>(), "Natasha danced."));
  EXPECT_EQ(Post("/detokenize", R"({"tokens": [99999999]})").first, 400);
  httplib::Client c = Client();
  auto metrics = c.Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_EQ(metrics->status, 200);
  for (const char* name : {"loom:num_requests_running ", "loom:num_requests_waiting ",
                           "loom:kv_cache_usage_perc ", "loom:serving_weight_version ",
                           "loom:request_success_total{finished_reason=\"length\"} ",
                           "loom:rank_ready{rank=\"0\"} 1", "loom:generation_tokens_total ",
                           "loom:prompt_tokens_total ",
                           "loom:time_to_first_token_seconds_bucket{le=\"+Inf\"} ",
                           "loom:inter_token_latency_seconds_count ",
                           "loom:e2e_request_latency_seconds_sum "}) {
    EXPECT_TRUE(absl::StrContains(metrics->body, name)) << name << "\n" << metrics->body;
  }
}

TEST_F(OpenAiHttpTest, SixtyFourConcurrentStreamsAllCompleteWithTheGreedyText) {
  std::vector<std::string> prompts;
  std::vector<std::string> expected;
  for (int p = 0; p < 8; ++p) {
    prompts.push_back(absl::StrCat("Chapter ", p + 1, ". The"));
    expected.push_back(Completion({{"prompt", prompts.back()}, {"max_tokens", 12},
                                   {"temperature", 0}, {"ignore_eos", true}})["choices"][0]["text"]);
  }
  std::vector<std::string> got(64);
  std::vector<std::thread> clients;
  for (int i = 0; i < 64; ++i) {
    clients.emplace_back([&, i] {
      std::string text;
      for (const json& e : Stream({{"prompt", prompts[i % 8]}, {"max_tokens", 12},
                                   {"temperature", 0}, {"ignore_eos", true}})) {
        if (!e["choices"].empty()) text += e["choices"][0]["text"].get<std::string>();
      }
      got[i] = text;
    });
  }
  for (std::thread& t : clients) t.join();
  for (int i = 0; i < 64; ++i) {
    EXPECT_EQ(got[i], expected[i % 8]) << "stream " << i << " of prompt \"" << prompts[i % 8]
                                       << "\"\n" << server_->Log().substr(0, 2000);
  }
}

TEST_F(OpenAiHttpTest, AClientThatGoesAwayAbortsItsSequence) {
  const int64_t aborted_before = server_->Status().finished().abort();
  httplib::Client c = Client();
  httplib::Request req;
  req.method = "POST";
  req.path = "/v1/completions";
  req.set_header("Content-Type", "application/json");
  req.body = json({{"model", "wp"}, {"prompt", "The"}, {"max_tokens", 4000}, {"stream", true},
                   {"ignore_eos", true}})
                 .dump();
  std::atomic<int> chunks{0};
  req.content_receiver = [&chunks](const char*, size_t, uint64_t, uint64_t) {
    return ++chunks < 3;  // hang up after a few events
  };
  c.send(req);
  EXPECT_GE(chunks.load(), 3);
  // The server sees the closed connection at its next write and aborts the sequence.
  bool aborted = false;
  for (int i = 0; i < 100 && !aborted; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    aborted = server_->Status().finished().abort() > aborted_before;
  }
  EXPECT_TRUE(aborted);
}

// Chat completions on a copy of the model with a chat template of its own (ChatML-like, with a
// raise_exception for a role it refuses).
constexpr char kTemplate[] =
    "{%- for message in messages %}"
    "{%- if message.role == 'tool' %}{{ raise_exception('tool messages are not supported') }}"
    "{%- endif %}"
    "{{ '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{%- endif %}";

class OpenAiChatTest : public OpenAiHttpTest {
 protected:
  static void SetUpTestSuite() {
    if (!std::filesystem::exists(Model() + "/config.json")) return;
    const std::string dir = testing::MakeTempDir("loom-chat-model");
    for (const auto& entry : std::filesystem::directory_iterator(Model())) {
      std::filesystem::create_symlink(entry.path(), dir + "/" + entry.path().filename().string());
    }
    std::ofstream(dir + "/chat_template.jinja") << kTemplate;
    server_ = new Server("--model " + dir + " --served-model-name wp");
  }
  static json Chat(json request) {
    request["model"] = "wp";
    auto [status, body] = Post("/v1/chat/completions", request.dump());
    EXPECT_EQ(status, 200) << body.dump();
    return body;
  }
};

const json kMessages = {{{"role", "system"}, {"content", "You are terse."}},
                        {{"role", "user"}, {"content", "Who is Natasha?"}}};
constexpr char kRendered[] =
    "<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nWho is Natasha?"
    "<|im_end|>\n<|im_start|>assistant\n";

TEST_F(OpenAiChatTest, AChatIsTheCompletionOfItsRenderedTemplate) {
  auto [status, tokens] = Post("/tokenize", json({{"prompt", kRendered},
                                                  {"add_special_tokens", false}}).dump());
  ASSERT_EQ(status, 200) << tokens.dump();
  const json completion = Completion({{"prompt", tokens["tokens"]}, {"max_tokens", 20},
                                      {"temperature", 0}, {"ignore_eos", true}});
  const json chat = Chat({{"messages", kMessages}, {"max_completion_tokens", 20},
                          {"temperature", 0}, {"ignore_eos", true}});
  EXPECT_EQ(chat["object"], "chat.completion");
  ASSERT_EQ(chat["choices"].size(), 1u);
  EXPECT_EQ(chat["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(chat["choices"][0]["message"]["content"], completion["choices"][0]["text"]);
  EXPECT_EQ(chat["usage"]["prompt_tokens"], tokens["count"]);
  EXPECT_EQ(chat["usage"]["completion_tokens"], 20);
  EXPECT_EQ(chat["choices"][0]["finish_reason"], "length");
  EXPECT_TRUE(chat["weight_version"].is_number());

  // Content as a list of text parts renders the same.
  json parts = kMessages;
  parts[1]["content"] = {{{"type", "text"}, {"text", "Who is "}}, {{"type", "text"}, {"text", "Natasha?"}}};
  const json chat_parts = Chat({{"messages", parts}, {"max_tokens", 20}, {"temperature", 0},
                                {"ignore_eos", true}});
  EXPECT_EQ(chat_parts["choices"][0]["message"]["content"], completion["choices"][0]["text"]);
}

TEST_F(OpenAiChatTest, AStreamedChatSendsTheRoleThenTheContent) {
  const json whole = Chat({{"messages", kMessages}, {"max_tokens", 12}, {"temperature", 0},
                           {"ignore_eos", true}});
  httplib::Client c = Client();
  json request = {{"model", "wp"}, {"messages", kMessages}, {"max_tokens", 12},
                  {"temperature", 0}, {"ignore_eos", true}, {"stream", true},
                  {"logprobs", true}, {"top_logprobs", 2},
                  {"stream_options", {{"include_usage", true}}}};
  auto r = c.Post("/v1/chat/completions", request.dump(), "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  std::string content;
  int role_chunks = 0, logprob_tokens = 0;
  bool done = false, finished = false;
  for (absl::string_view line : absl::StrSplit(r->body, "\n\n", absl::SkipEmpty())) {
    const std::string data(line.substr(6));
    if (data == "[DONE]") {
      done = true;
      continue;
    }
    const json chunk = json::parse(data);
    EXPECT_EQ(chunk["object"], "chat.completion.chunk");
    if (chunk["choices"].empty()) {
      EXPECT_EQ(chunk["usage"]["completion_tokens"], 12);
      continue;
    }
    const json& delta = chunk["choices"][0]["delta"];
    if (delta.contains("role")) ++role_chunks;
    content += delta.value("content", "");
    if (chunk["choices"][0]["logprobs"].is_object()) {
      logprob_tokens += static_cast<int>(chunk["choices"][0]["logprobs"]["content"].size());
    }
    if (!chunk["choices"][0]["finish_reason"].is_null()) finished = true;
  }
  EXPECT_TRUE(done);
  EXPECT_TRUE(finished);
  EXPECT_EQ(role_chunks, 1);
  EXPECT_EQ(logprob_tokens, 12);
  EXPECT_EQ(content, whole["choices"][0]["message"]["content"]);
}

TEST_F(OpenAiChatTest, BadConversationsAreClearErrors) {
  auto missing = Post("/v1/chat/completions", R"({"model": "wp"})");
  EXPECT_EQ(missing.first, 400);
  EXPECT_EQ(missing.second["error"]["param"], "messages");
  auto refused = Post("/v1/chat/completions",
                      R"({"model": "wp", "messages": [{"role": "tool", "content": "x"}]})");
  EXPECT_EQ(refused.first, 400);
  EXPECT_EQ(refused.second["error"]["message"], "tool messages are not supported");
  auto bad_part = Post("/v1/chat/completions",
                       R"({"model": "wp", "messages": [{"role": "user", "content": [{"type": "image"}]}]})");
  EXPECT_EQ(bad_part.first, 400);
  auto both = Post("/v1/chat/completions",
                   R"({"model": "wp", "messages": [{"role": "user", "content": "a"}],
                       "continue_final_message": true, "add_generation_prompt": true})");
  EXPECT_EQ(both.first, 400);
  // A final assistant message continued: the prompt ends with its content.
  const json continued = Chat({{"messages", {{{"role", "user"}, {"content", "Say it"}},
                                             {{"role", "assistant"}, {"content", "Prince"}}}},
                               {"continue_final_message", true}, {"max_tokens", 3}});
  EXPECT_EQ(continued["choices"].size(), 1u);
}

TEST(ChatTemplateLoadTest, AMissingOrBrokenTemplateIsAClearError) {
  const std::string none = testing::MakeTempDir("loom-no-template");
  std::ofstream(none + "/tokenizer_config.json") << R"({"eos_token": "</s>"})";
  auto missing = openai::LoadChatTemplate(none);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(missing.status().message(), "no chat template")) << missing.status();
  const std::string broken = testing::MakeTempDir("loom-bad-template");
  std::ofstream(broken + "/chat_template.jinja") << "{% for m in messages %}\n{{ m | nosuchfilter }}";
  auto bad = openai::LoadChatTemplate(broken);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(bad.status().message(), "chat_template.jinja")) << bad.status();
  // The trained model's own template (tokenizer_config.json) loads, with its special tokens.
  auto own = openai::LoadChatTemplate(Model());
  ASSERT_TRUE(own.ok()) << own.status();
  EXPECT_FALSE((*own)->eos_token.empty());
}

}  // namespace
}  // namespace loom
