#!/usr/bin/env python3
"""Reference continuations with sampling penalties, from HF transformers.

For the trained War and Peace model (models/war-and-peace/v2) and one random fixture
(tests/data/models/qwen3-f32), greedy continuations of fixed prompts under:
  - HF's RepetitionPenaltyLogitsProcessor (`repetition_penalty`, over prompt and output);
  - OpenAI's presence and frequency penalties over the output (vLLM's semantics), as a
    LogitsProcessor written here from OpenAI's formula: logit -= frequency * count +
    presence * (count > 0);
  - both at once (repetition first, as vLLM applies them).
Writes tests/data/penalties/reference.json.

Usage (from the repository root, with tools/requirements-reference.txt's versions):
    python tools/make_penalty_fixtures.py
"""
import json
import os

import torch
import transformers
from transformers import AutoModelForCausalLM, LogitsProcessor, LogitsProcessorList

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NEW_TOKENS = 24


class OpenAiPenalties(LogitsProcessor):
    def __init__(self, prompt_len, presence, frequency):
        self.prompt_len, self.presence, self.frequency = prompt_len, presence, frequency

    def __call__(self, input_ids, scores):
        for b in range(input_ids.shape[0]):
            out = input_ids[b, self.prompt_len:]
            if out.numel() == 0:
                continue
            counts = torch.bincount(out, minlength=scores.shape[1]).to(scores.dtype)
            scores[b] -= self.frequency * counts + self.presence * (counts > 0).to(scores.dtype)
        return scores


def main():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    cases = []
    for model_dir, prompts in (
            ("models/war-and-peace/v2", [[5, 40, 61, 9, 33, 70], [2, 17, 17, 17, 4]]),
            ("tests/data/models/qwen3-f32", [[3, 14, 15, 92, 65, 35], [7, 7, 7, 7]])):
        model = AutoModelForCausalLM.from_pretrained(os.path.join(REPO, model_dir),
                                                     torch_dtype=torch.float32)
        model.eval()
        for penalties in ({"repetition_penalty": 1.3},
                          {"presence_penalty": 0.8, "frequency_penalty": 0.5},
                          {"repetition_penalty": 1.2, "presence_penalty": 0.4,
                           "frequency_penalty": 0.3}):
            for prompt in prompts:
                ids = torch.tensor([prompt])
                processors = LogitsProcessorList()
                rep = penalties.get("repetition_penalty", 1.0)
                if rep != 1.0:
                    processors.append(transformers.RepetitionPenaltyLogitsProcessor(rep))
                if "presence_penalty" in penalties:
                    processors.append(OpenAiPenalties(len(prompt), penalties["presence_penalty"],
                                                      penalties["frequency_penalty"]))
                with torch.no_grad():
                    out = model.generate(ids, max_new_tokens=NEW_TOKENS, do_sample=False,
                                         logits_processor=processors, eos_token_id=None,
                                         pad_token_id=0, min_new_tokens=NEW_TOKENS)
                cases.append({"model": model_dir, "prompt_ids": prompt, "penalties": penalties,
                              "greedy_ids": out[0, len(prompt):].tolist()})
    path = os.path.join(REPO, "tests/data/penalties/reference.json")
    with open(path, "w") as f:
        json.dump({"transformers": transformers.__version__, "torch": torch.__version__,
                   "new_tokens": NEW_TOKENS, "cases": cases}, f, indent=1)
    print(f"wrote {len(cases)} cases to {path}")


if __name__ == "__main__":
    main()
