// Unit cases: whitespace control, expressions, parse errors and raise_exception.
#include "controller/chat_template/chat_template.h"

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace loom::chat_template {
namespace {

using nlohmann::ordered_json;

std::string R(const std::string& src, const ordered_json& ctx = ordered_json::object()) {
  auto t = ChatTemplate::Parse(src, "t");
  if (!t.ok()) return "PARSE ERROR: " + std::string(t.status().message());
  auto out = t->Render(ctx);
  if (!out.ok()) return "RENDER ERROR: " + std::string(out.status().message());
  return *out;
}

TEST(ChatTemplateWhitespace, TrimAndLstripBlocks) {
  // trim_blocks eats the newline after %}; lstrip_blocks the indentation before {%.
  EXPECT_EQ(R("{% if true %}\n  yes\n{% endif %}\nend"), "  yes\nend");
  EXPECT_EQ(R("a\n    {% if true %}b{% endif %}"), "a\nb");
  // Not for {{ }}: its indentation and the newline after it stay.
  EXPECT_EQ(R("a\n  {{ 'x' }}\nb"), "a\n  x\nb");
  // Comments behave like blocks.
  EXPECT_EQ(R("a\n  {# c #}\nb"), "a\nb");
  // {%+ keeps the indentation.
  EXPECT_EQ(R("a\n  {%+ if true %}b{% endif %}"), "a\n  b");
  // One trailing newline of the template is dropped.
  EXPECT_EQ(R("x\n"), "x");
  EXPECT_EQ(R("x\n\n"), "x\n");
}

TEST(ChatTemplateWhitespace, MinusModifiers) {
  EXPECT_EQ(R("a  \n {{- 'b' -}} \n  c"), "abc");
  EXPECT_EQ(R("a \n{%- if true -%}\n b \n{%- endif %}"), "ab");
  EXPECT_EQ(R("a\n{#- c -#}\n b"), "ab");
  EXPECT_EQ(R("{% for i in range(3) -%}\n  {{ i }}\n{%- endfor %}"), "012");
}

TEST(ChatTemplateExpr, Values) {
  EXPECT_EQ(R("{{ 1.0 }} {{ 2 }} {{ true }} {{ none }} {{ 1e20 }} {{ 0.1 + 0.2 }}"),
            "1.0 2 True None 1e+20 0.30000000000000004");
  EXPECT_EQ(R("{{ [1, 'a', none] }} {{ {'k': \"it's\"} }}"), "[1, 'a', None] {'k': \"it's\"}");
  EXPECT_EQ(R("{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % -3 }} {{ 7 / 2 }} {{ 2 ** 3 }}"), "3 -4 -2 3.5 8");
  EXPECT_EQ(R("{{ 'ab' ~ 1 ~ none }} {{ [1] + [2] }} {{ 'x' * 3 }}"), "ab1None [1, 2] xxx");
  EXPECT_EQ(R("{{ 'h\\u00e9\\n'|length }} {{ 'héllo'[::-1] }} {{ [1,2,3,4][1:3] }}"), "3 olléh [2, 3]");
}

TEST(ChatTemplateExpr, UndefinedAndTests) {
  EXPECT_EQ(R("[{{ x }}]{{ x is defined }}{{ (x.y is defined) if x is defined else 'u' }}"), "[]Falseu");
  EXPECT_EQ(R("{{ m.missing is defined }} {{ m.a is string }} {{ m is mapping }}", {{"m", {{"a", "s"}}}}),
            "False True True");
  // As in Jinja2, a bare test argument ends only at else/or/and: this is a syntax error.
  EXPECT_FALSE(ChatTemplate::Parse("{{ x is defined if y }}", "t").ok());
  EXPECT_EQ(R("{{ x.y }}"), "RENDER ERROR: chat template 't' line 1: 'x' is undefined");
  EXPECT_EQ(R("{{ 1 is number }} {{ 'a' is iterable }} {{ none is none }} {{ 3 is odd }} {{ 4 is divisibleby 2 }}"),
            "True True True True True");
  EXPECT_EQ(R("{{ 'b' in 'abc' }} {{ 'k' in {'k': 1} }} {{ 2 not in [1, 2] }}"), "True True False");
  EXPECT_EQ(R("{{ 'yes' if 0 else 'no' }}{{ 'x' if false }}|{{ 0 or 'z' }} {{ 1 and 2 }}"), "no|z 2");
}

TEST(ChatTemplateExpr, FiltersAndMethods) {
  EXPECT_EQ(R("{{ {'a': 'é', 'b': [1, 2.0]}|tojson }}"), "{\"a\": \"é\", \"b\": [1, 2.0]}");
  EXPECT_EQ(R("{{ {'a': [1]}|tojson(indent=2) }}"), "{\n  \"a\": [\n    1\n  ]\n}");
  EXPECT_EQ(R("{{ '  a b  '|trim|upper }} {{ 'hello world'|title }} {{ [3,1,2]|sort|join('-') }}"),
            "A B Hello World 1-2-3");
  EXPECT_EQ(R("{{ x|default('d') }} {{ [1,2]|first }} {{ [1,2]|last }} {{ 'a,b'.split(',') }}"),
            "d 1 2 ['a', 'b']");
  EXPECT_EQ(R("{{ ' x '.strip() }}|{{ 'xxay'.lstrip('x') }}|{{ 'a b  c'.split() }}|{{ 'abc'.startswith('ab') }}"),
            "x|ay|['a', 'b', 'c']|True");
  EXPECT_EQ(R("{% for k, v in {'b': 1, 'a': 2}.items() %}{{ k }}{{ v }}{% endfor %}"), "b1a2");
  EXPECT_EQ(R("{% set ns = namespace(n=0) %}{% for i in range(5) if i is odd %}{% set ns.n = ns.n + i %}"
              "{% if loop.last %}{{ loop.length }}{% endif %}{% endfor %}{{ ns.n }}"),
            "24");
  EXPECT_EQ(R("{% for i in range(10) %}{% if i == 3 %}{% break %}{% endif %}{% if i == 1 %}{% continue %}"
              "{% endif %}{{ i }}{% endfor %}"),
            "02");
  EXPECT_EQ(R("{% for x in [] %}x{% else %}empty{% endfor %}"), "empty");
  EXPECT_EQ(R("{% set x = 1 %}{% for i in [1] %}{% set x = 2 %}{% endfor %}{{ x }}"), "1");
}

TEST(ChatTemplateExpr, StrftimeNowReadsTheGivenClock) {
  auto t = ChatTemplate::Parse("{{ strftime_now('%Y-%m-%d %H:%M') }}", "clock");
  ASSERT_TRUE(t.ok());
  RenderOptions o;
  o.now = [] {
    std::tm tm{};
    tm.tm_year = 124;
    tm.tm_mon = 6;
    tm.tm_mday = 26;
    tm.tm_hour = 9;
    return tm;
  };
  EXPECT_EQ(*t->Render(ordered_json::object(), o), "2024-07-26 09:00");
}

TEST(ChatTemplateErrors, ParseErrorsNameTemplateAndLine) {
  auto bad = ChatTemplate::Parse("ok\n{% if x %}\n{{ x | no_such_filter }}\n{% endif %}", "my-model");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(bad.status().message(), "chat template 'my-model' line 3: unknown filter 'no_such_filter'");
  auto test = ChatTemplate::Parse("{{ x is frobbed }}", "m");
  EXPECT_EQ(test.status().message(), "chat template 'm' line 1: unknown test 'frobbed'");
  auto method = ChatTemplate::Parse("\n\n{{ x.frobnicate() }}", "m");
  EXPECT_EQ(method.status().message(), "chat template 'm' line 3: unknown method 'frobnicate'");
  auto unclosed = ChatTemplate::Parse("{% for x in y %}\nno end", "m");
  EXPECT_FALSE(unclosed.ok());
  EXPECT_NE(unclosed.status().message().find("chat template 'm' line 2"), std::string::npos) << unclosed.status();
  auto syntax = ChatTemplate::Parse("a\n{{ 1 + }}", "m");
  EXPECT_NE(syntax.status().message().find("chat template 'm' line 2"), std::string::npos) << syntax.status();
  EXPECT_FALSE(ChatTemplate::Parse("{% include 'x' %}", "m").ok());
  EXPECT_FALSE(ChatTemplate::Parse("{{ 'unterminated }}", "m").ok());
  EXPECT_FALSE(ChatTemplate::Parse("{% break %}", "m").ok());
}

TEST(ChatTemplateErrors, RaiseExceptionMessageSurfaces) {
  auto t = ChatTemplate::Parse("{% if messages[0].role == 'system' %}{{ raise_exception('no system') }}{% endif %}ok",
                               "m");
  ASSERT_TRUE(t.ok());
  ordered_json ctx = {{"messages", {{{"role", "system"}, {"content", "x"}}}}};
  auto out = t->Render(ctx);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(out.status().message(), "no system");
  ctx["messages"][0]["role"] = "user";
  EXPECT_EQ(*t->Render(ctx), "ok");
  // A type error names the template and line.
  auto bad = ChatTemplate::Parse("\n{{ 'a' + 1 }}", "m");
  ASSERT_TRUE(bad.ok());
  EXPECT_EQ(bad->Render(ordered_json::object()).status().message(),
            "chat template 'm' line 2: can only concatenate str (not \"int\") to str");
}

}  // namespace
}  // namespace loom::chat_template
