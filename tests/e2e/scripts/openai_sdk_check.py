"""Drives a running `loom serve` with the official openai SDK and prints one JSON summary.

Usage: python openai_sdk_check.py BASE_URL MODEL
The C++ test (tests/e2e/openai_sdk_test.cc) compares the summary with the gRPC API's output.
"""
import json
import sys

import openai


def main() -> None:
    base_url, model = sys.argv[1], sys.argv[2]
    client = openai.OpenAI(base_url=base_url, api_key="unused")
    out = {"models": [m.id for m in client.models.list().data]}

    c = client.completions.create(model=model, prompt="Well, Prince", max_tokens=16,
                                  temperature=0, extra_body={"ignore_eos": True})
    out["completion"] = {"text": c.choices[0].text, "finish": c.choices[0].finish_reason,
                         "usage": c.usage.completion_tokens,
                         "fingerprint": c.system_fingerprint}

    text = ""
    usage = None
    for chunk in client.completions.create(model=model, prompt="Well, Prince", max_tokens=16,
                                           temperature=0, stream=True,
                                           stream_options={"include_usage": True},
                                           extra_body={"ignore_eos": True}):
        if chunk.choices:
            text += chunk.choices[0].text
        if chunk.usage is not None:
            usage = chunk.usage.completion_tokens
    out["completion_stream"] = {"text": text, "usage": usage}

    two = client.completions.create(model=model, prompt="The", max_tokens=6, n=2, seed=3,
                                    temperature=1.0, logprobs=2, stop=["\n"])
    out["n2"] = {"choices": len(two.choices),
                 "logprob_tokens": [len(ch.logprobs.tokens) for ch in two.choices]}

    messages = [{"role": "user", "content": "Who is Natasha?"}]
    chat = client.chat.completions.create(model=model, messages=messages, max_tokens=12,
                                          temperature=0, extra_body={"ignore_eos": True})
    out["chat"] = {"content": chat.choices[0].message.content,
                   "role": chat.choices[0].message.role,
                   "usage": chat.usage.completion_tokens}
    content = ""
    for chunk in client.chat.completions.create(model=model, messages=messages, max_tokens=12,
                                                temperature=0, stream=True,
                                                extra_body={"ignore_eos": True}):
        if chunk.choices and chunk.choices[0].delta.content:
            content += chunk.choices[0].delta.content
    out["chat_stream"] = content

    try:
        client.completions.create(model=model, prompt="x", max_tokens=0)
        out["bad"] = "accepted"
    except openai.BadRequestError as e:
        out["bad"] = {"status": e.status_code, "param": (e.body or {}).get("param")}
    try:
        client.completions.create(model="no-such-model", prompt="x")
        out["unknown_model"] = "accepted"
    except openai.NotFoundError as e:
        out["unknown_model"] = e.status_code
    print(json.dumps(out))


if __name__ == "__main__":
    main()
