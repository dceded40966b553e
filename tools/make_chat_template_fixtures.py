#!/usr/bin/env python3
"""Produce the chat-template reference fixture tests/data/chat_templates/reference.json.

Usage (from the project root, with the reference venv; no network is used):

    /root/.cache/refvenv/bin/python tools/make_chat_template_fixtures.py \
        --shared ../shared/fixtures --out tests/data/chat_templates/reference.json

Every output comes from `transformers`' own renderer (`render_jinja_template`, what
`apply_chat_template(tokenize=False)` calls), with `strftime_now` frozen to FROZEN_NOW.
Each case records the exact context the template saw (after transformers' reasoning-field
aliasing), so the C++ side renders the same context. Where transformers raises, the case
records the error message instead of an output. The run is deterministic.
"""

import argparse
import datetime as real_datetime
import glob
import json
import os

import jinja2
import transformers
from transformers.utils import chat_template_utils as ctu

FROZEN_NOW = real_datetime.datetime(2025, 3, 7, 14, 5, 9)


class _FrozenDatetime(real_datetime.datetime):
    @classmethod
    def now(cls, tz=None):
        return FROZEN_NOW


# strftime_now reads the module-global `datetime` at call time.
ctu.datetime = _FrozenDatetime

TOOLS = [
    {"type": "function", "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city.",
        "parameters": {"type": "object", "properties": {
            "city": {"type": "string", "description": "City name, e.g. Zürich"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
            "required": ["city"]}}},
    {"type": "function", "function": {
        "name": "add", "description": "Add two numbers.",
        "parameters": {"type": "object", "properties": {
            "a": {"type": "number"}, "b": {"type": "number", "default": 1.0}},
            "required": ["a"]},
        "return": {"type": "number"}}},
]

CALL = {"id": "call12345", "type": "function",
        "function": {"name": "get_weather", "arguments": {"city": "Zürich", "unit": "celsius"}}}
CALL2 = {"id": "call67890", "type": "function",
         "function": {"name": "add", "arguments": {"a": 2, "b": 3.5}}}

CONVERSATIONS = [
    ("user_only", [{"role": "user", "content": "Hello!"}], None, {}),
    ("system_user", [{"role": "system", "content": "You are terse."},
                     {"role": "user", "content": "What is 2+2?"}], None, {}),
    ("multi_turn", [{"role": "system", "content": "Be kind."},
                    {"role": "user", "content": "Hi"},
                    {"role": "assistant", "content": "Hello! How can I help?"},
                    {"role": "user", "content": "Tell me a joke."}], None, {}),
    ("assistant_last", [{"role": "user", "content": "Say yes."},
                        {"role": "assistant", "content": "Yes."}], None, {}),
    ("empty_content", [{"role": "user", "content": ""},
                       {"role": "assistant", "content": ""},
                       {"role": "user", "content": "ok"}], None, {}),
    ("unicode", [{"role": "user",
                  "content": "Grüß dich — 你好 🌍\n\"quoted\" \\ back\ttab {{ not jinja }}"}], None, {}),
    ("padded", [{"role": "system", "content": "  sys with spaces \n"},
                {"role": "user", "content": "\n  padded user  \n"}], None, {}),
    ("thinking", [{"role": "user", "content": "Think first."},
                  {"role": "assistant", "content": "<think>\nsome reasoning\n</think>\n\nThe answer."},
                  {"role": "user", "content": "And again?"}], None, {}),
    ("thinking_last", [{"role": "user", "content": "Think first."},
                       {"role": "assistant", "content": "<think>\nhmm\n</think>\n\nDone."}], None, {}),
    ("reasoning_field", [{"role": "user", "content": "Q"},
                         {"role": "assistant", "content": "A", "reasoning_content": "because"}], None, {}),
    ("no_thinking", [{"role": "system", "content": "Helper /no_think"},
                     {"role": "user", "content": "Quick."}], None, {"enable_thinking": False}),
    ("tools_defined", [{"role": "user", "content": "Weather in Zürich?"}], TOOLS, {}),
    ("tool_round_trip", [
        {"role": "system", "content": "You call tools."},
        {"role": "user", "content": "Weather in Zürich?"},
        {"role": "assistant", "content": "", "tool_calls": [CALL]},
        {"role": "tool", "tool_call_id": "call12345", "content": "{\"temp\": 21}"},
        {"role": "assistant", "content": "It is 21 °C."},
        {"role": "user", "content": "Thanks"}], TOOLS, {}),
    ("parallel_calls", [
        {"role": "user", "content": "Do both."},
        {"role": "assistant", "content": "Calling.", "tool_calls": [CALL, CALL2]},
        {"role": "tool", "tool_call_id": "call12345", "content": "sunny"},
        {"role": "tool", "tool_call_id": "call67890", "content": "5.5"}], TOOLS, {}),
    ("not_alternating", [{"role": "user", "content": "one"},
                         {"role": "user", "content": "two"}], None, {}),
    ("date_string", [{"role": "user", "content": "What day is it?"}], None,
     {"date_string": "07 Mar 2025"}),
]

# Small templates of our own for the parts of Jinja the real ones do not reach.
SYNTHETIC = {
    "synthetic-strftime": "{{ strftime_now('%d %b %Y %H:%M:%S') }}|{{ strftime_now('%Y-%m-%d') }}",
    "synthetic-loop": (
        "{% for m in messages %}{{ loop.index }}/{{ loop.length }} {{ loop.revindex0 }}"
        "{{ ' first' if loop.first }}{{ ' last' if loop.last }}: {{ m.role|upper }}={{ m.content|length }}\n"
        "{% else %}none\n{% endfor %}"
        "{% for k, v in {'b': 1, 'a': [1, 2.5, none, true]}.items() %}{{ k }}={{ v }};{% endfor %}\n"
        "{{ messages|map(attribute='role')|unique|join(',') }} {{ messages|selectattr('role', 'equalto', 'user')|list|length }}\n"
        "{{ (messages|last).content[::-1] }} {{ 7 // 2 }} {{ 7 / 2 }} {{ -7 % 3 }} {{ 2 ** 10 }} {{ 1.5 * 2 }}\n"
        "{{ tools|tojson if tools else 'no tools' }}\n"
        "{%- macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}\n"
        "{{ greet('you') }} {{ greet('me', punct='?') }}\n"
        "  {%- set x %}block {{ 1 + 2 }}{% endset %}\n"
        "[{{ x }}] {{ 'a,b,,c'.split(',') }} {{ ' x '.strip() ~ 'y' }} {{ {'k': 'v'}.get('z', 'dflt') }}\n"
    ),
}


def render(source, conv_messages, tools, extra, add_generation_prompt):
    kwargs = dict(bos_token="<BOS>", eos_token="<EOS>")
    kwargs.update(extra)
    try:
        out, _ = ctu.render_jinja_template(
            conversations=[conv_messages], tools=tools, documents=None, chat_template=source,
            add_generation_prompt=add_generation_prompt, **kwargs)
        return {"output": out[0]}
    except jinja2.exceptions.TemplateError as e:
        return {"error": str(e)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default="../shared/fixtures")
    ap.add_argument("--out", default="tests/data/chat_templates/reference.json")
    args = ap.parse_args()

    templates = []
    seen = {}
    for path in sorted(glob.glob(os.path.join(args.shared, "chat-templates", "*.jinja"))):
        with open(path, encoding="utf-8") as f:
            src = f.read()
        templates.append({"name": os.path.basename(path),
                          "path": os.path.relpath(path, args.shared), "source": src})
    for path in sorted(glob.glob(os.path.join(args.shared, "tokenizers", "*", "tokenizer_config*.json"))):
        with open(path, encoding="utf-8") as f:
            src = json.load(f).get("chat_template")
        if isinstance(src, str):
            templates.append({"name": os.path.relpath(path, os.path.join(args.shared, "tokenizers")),
                              "path": os.path.relpath(path, args.shared), "key": "chat_template",
                              "source": src})
    for name, src in SYNTHETIC.items():
        templates.append({"name": name, "inline": src, "source": src})

    conversations = []
    for name, messages, tools, extra in CONVERSATIONS:
        # The context the template sees: transformers' own conversion of the messages.
        seen_messages = ctu._alias_reasoning_fields(ctu._plain_template_data(messages))
        conversations.append({"name": name, "messages": seen_messages, "tools": tools, "extra": extra})

    cases = []
    for ti, t in enumerate(templates):
        src = t.pop("source")
        # Identical templates (e.g. a tokenizer_config holding a .jinja's text) are rendered once.
        if src in seen:
            t["same_as"] = seen[src]
            continue
        seen[src] = t["name"]
        for ci, conv in enumerate(conversations):
            for agp in (False, True):
                case = {"template": ti, "conversation": ci, "add_generation_prompt": agp}
                case.update(render(src, conv["messages"], conv["tools"], conv["extra"], agp))
                cases.append(case)

    doc = {
        "generator": "tools/make_chat_template_fixtures.py",
        "transformers_version": transformers.__version__,
        "jinja2_version": jinja2.__version__,
        "frozen_now": FROZEN_NOW.isoformat(),
        "context": "messages, tools, documents=null, add_generation_prompt, bos_token='<BOS>', "
                   "eos_token='<EOS>', plus each conversation's extra",
        "templates": templates,
        "conversations": conversations,
        "cases": cases,
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False, indent=1)
        f.write("\n")
    n_err = sum(1 for c in cases if "error" in c)
    print(f"{len(templates)} templates, {len(conversations)} conversations, {len(cases)} cases "
          f"({n_err} errors) -> {args.out} ({os.path.getsize(args.out)} bytes)")


if __name__ == "__main__":
    main()
