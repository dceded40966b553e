// Every case of tests/data/chat_templates/reference.json (made by
// tools/make_chat_template_fixtures.py from transformers' own renderer) renders byte-equal here,
// or fails where transformers raised, with the same message.
#include <fstream>
#include <sstream>

#include "controller/chat_template/chat_template.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/test_paths.h"

namespace loom::chat_template {
namespace {

using nlohmann::ordered_json;

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::tm FrozenNow() {  // the fixture's frozen_now: 2025-03-07T14:05:09 (a Friday)
  std::tm tm{};
  tm.tm_year = 2025 - 1900;
  tm.tm_mon = 2;
  tm.tm_mday = 7;
  tm.tm_hour = 14;
  tm.tm_min = 5;
  tm.tm_sec = 9;
  tm.tm_wday = 5;
  tm.tm_yday = 65;
  return tm;
}

TEST(ChatTemplateReference, EveryCaseMatchesTransformers) {
  ordered_json doc =
      ordered_json::parse(ReadFile(loom::testing::SourceDir() + "/tests/data/chat_templates/reference.json"));
  ASSERT_EQ(doc["frozen_now"], "2025-03-07T14:05:09");
  std::vector<std::optional<ChatTemplate>> templates;
  for (const auto& t : doc["templates"]) {
    std::string src;
    if (t.contains("inline")) {
      src = t["inline"];
    } else if (t.contains("key")) {
      src = ordered_json::parse(ReadFile(loom::testing::SharedFixtures() + "/" + t["path"].get<std::string>()))
                [t["key"].get<std::string>()];
    } else {
      src = ReadFile(loom::testing::SharedFixtures() + "/" + t["path"].get<std::string>());
    }
    auto parsed = ChatTemplate::Parse(src, t["name"]);
    EXPECT_TRUE(parsed.ok()) << parsed.status();
    templates.push_back(parsed.ok() ? std::optional<ChatTemplate>(*parsed) : std::nullopt);
  }
  RenderOptions options;
  options.now = FrozenNow;
  int passed = 0, total = 0;
  for (const auto& c : doc["cases"]) {
    ++total;
    const auto& conv = doc["conversations"][c["conversation"].get<int>()];
    const auto& t = templates[c["template"].get<int>()];
    std::string label = doc["templates"][c["template"].get<int>()]["name"].get<std::string>() + " x " +
                        conv["name"].get<std::string>() + (c["add_generation_prompt"].get<bool>() ? " +gen" : "");
    if (!t) continue;
    ordered_json ctx;
    ctx["messages"] = conv["messages"];
    ctx["tools"] = conv["tools"];
    ctx["documents"] = nullptr;
    ctx["add_generation_prompt"] = c["add_generation_prompt"];
    ctx["bos_token"] = "<BOS>";
    ctx["eos_token"] = "<EOS>";
    for (const auto& [k, v] : conv["extra"].items()) ctx[k] = v;
    auto out = t->Render(ctx, options);
    if (c.contains("error")) {
      bool ok = !out.ok() && out.status().message() == c["error"].get<std::string>();
      EXPECT_TRUE(ok) << label << ": expected error '" << c["error"].get<std::string>() << "', got "
                      << (out.ok() ? "output:\n" + *out : out.status().ToString());
      passed += ok;
    } else {
      bool ok = out.ok() && *out == c["output"].get<std::string>();
      EXPECT_TRUE(ok) << label << ":\n--- expected\n" << c["output"].get<std::string>() << "\n--- got\n"
                      << (out.ok() ? *out : out.status().ToString());
      passed += ok;
    }
  }
  std::cout << "chat template reference cases: " << passed << " / " << total << " pass\n";
  EXPECT_EQ(passed, total);
  EXPECT_GT(total, 300);
}

}  // namespace
}  // namespace loom::chat_template
