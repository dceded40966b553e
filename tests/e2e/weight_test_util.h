// What the weight-lifecycle tests share: `loom serve` of the llama-gqa fixture with a small
// f32 engine, its HF reference, and greedy generation over gRPC.
#ifndef LOOM_TESTS_E2E_WEIGHT_TEST_UTIL_H_
#define LOOM_TESTS_E2E_WEIGHT_TEST_UTIL_H_

#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tests/e2e/model_dir.h"
#include "tests/e2e/serve_process.h"

namespace loom::testing {

inline constexpr char kWeightTestEngine[] =
    " --weight-dtype float32 --block-size 4 --kv-cache-memory 1M ";

inline std::string WeightTestModel() { return FixtureModelDir("llama-gqa"); }
inline HfReference WeightTestReference() { return ReadHfReference(WeightTestModel()); }
// `loom serve` arguments for the fixture model, then `extra`.
inline std::string WeightTestServe(const std::string& extra) {
  return absl::StrCat("--model ", WeightTestModel(), kWeightTestEngine, extra);
}

inline Streamed GenerateIds(loom::v1::Loom::Stub& stub, const std::vector<int32_t>& prompt,
                            int max_tokens, const std::function<void()>& on_message = {}) {
  return Generate(stub, IdsRequest(prompt, max_tokens), on_message);
}

// Greedy outputs for every reference prompt, as many tokens as the reference has.
inline std::vector<std::vector<int32_t>> GreedyAll(Server& server, const HfReference& ref) {
  std::vector<std::vector<int32_t>> out;
  for (size_t i = 0; i < ref.prompts.size(); ++i) {
    Streamed g =
        GenerateIds(server.stub(), ref.prompts[i], static_cast<int>(ref.greedy[i].size()));
    EXPECT_TRUE(g.status.ok()) << g.status.error_message();
    out.push_back(g.ids);
  }
  return out;
}

// Whether a call failed with `text` in its message.
inline bool ErrorSays(const CallResult& r, const std::string& text) {
  return !r.status.ok() && r.status.error_message().find(text) != std::string::npos;
}

}  // namespace loom::testing

// A server that must start, or the test stops with its log.
#define ASSERT_SERVING(server) ASSERT_TRUE((server).ready()) << (server).Log()
#define ASSERT_CALL_OK(call) ASSERT_TRUE((call).status.ok()) << (call).status.error_message()

#endif  // LOOM_TESTS_E2E_WEIGHT_TEST_UTIL_H_
