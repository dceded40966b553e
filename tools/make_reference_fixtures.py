#!/usr/bin/env python3
"""Creates the reference fixtures in tests/data from HF transformers (tools nobody here wrote).

For each tiny, randomly initialised model of the families Loom serves it writes an f32 and a
bf16 HF checkpoint (and, for the models of FEATURE_MODELS, an f16 one and a sharded one) and,
for each, reference.json with HF's last-position logits and greedy continuation for fixed
prompts. It also converts the real stories260K llama2.c checkpoint with
Loom's converter (the converted model is not committed; tests re-run the converter) and records
HF's outputs on it, after checking the conversion against an independent llama2.c-semantics
forward pass and against a deliberately unpermuted conversion.

Usage (from the repository root, with the versions of tools/requirements-reference.txt):
    python tools/make_reference_fixtures.py --out tests/data \
        [--converter build/tools/loom-convert-llama2c] [--fixtures ../shared/fixtures]

Deterministic: weights, prompts and samples are seeded; math runs single-threaded in float32.
"""
import argparse
import copy
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import torch
import transformers
from safetensors.torch import load_file, save_file
from transformers import (AutoModelForCausalLM, LlamaConfig, MistralConfig, Qwen2Config,
                          Qwen3Config)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NEW_TOKENS = 32
PROMPT_LENGTHS = (5, 11, 17)
INIT_STD = 0.2  # far above HF's 0.02, so greedy outputs are not one repeated token

COMMON = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, vocab_size=512, max_position_embeddings=256,
              bos_token_id=1, eos_token_id=2)

# name -> (config class, overrides of COMMON). Each exercises one ModelConfig feature.
MODELS = {
    "llama-gqa": (LlamaConfig, dict(tie_word_embeddings=False, rms_norm_eps=1e-5)),
    "llama3-rope": (LlamaConfig, dict(
        tie_word_embeddings=True, rms_norm_eps=1e-5, rope_theta=500000.0,
        rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                      "high_freq_factor": 4.0, "original_max_position_embeddings": 64})),
    "llama-linear-rope": (LlamaConfig, dict(
        tie_word_embeddings=False, rope_scaling={"rope_type": "linear", "factor": 4.0})),
    "qwen2": (Qwen2Config, dict(tie_word_embeddings=True, rope_theta=1000000.0)),
    "qwen3": (Qwen3Config, dict(head_dim=32, tie_word_embeddings=True, rope_theta=1000000.0)),
    "mistral": (MistralConfig, dict(num_key_value_heads=1, tie_word_embeddings=False,
                                    sliding_window=None, rms_norm_eps=1e-5)),
}

# Models of one feature each that real checkpoints use: sliding windows, Llama's biases, yarn and
# dynamic rope. name -> (config class, overrides of COMMON, prompt lengths). Their prompts reach
# past the window or the original context; each is saved as f32, bf16 and f16, and the f16 one
# also sharded. The dynamic model's prompts cross max_position_embeddings in the prefill (40),
# during decoding (20 + 24) and never (6).
FEATURE_NEW_TOKENS = 24
FEATURE_MODELS = {
    "mistral-swa": (MistralConfig, dict(num_key_value_heads=2, tie_word_embeddings=False,
                                        sliding_window=16, rms_norm_eps=1e-5), (40, 23, 9)),
    "qwen2-swa": (Qwen2Config, dict(tie_word_embeddings=True, rope_theta=1000000.0,
                                    use_sliding_window=True, sliding_window=8,
                                    max_window_layers=1), (30, 12, 5)),
    "llama-bias": (LlamaConfig, dict(tie_word_embeddings=False, rms_norm_eps=1e-5,
                                     attention_bias=True, mlp_bias=True), (5, 11, 17)),
    "qwen3-yarn": (Qwen3Config, dict(head_dim=32, tie_word_embeddings=True,
                                     max_position_embeddings=64,
                                     rope_parameters={"rope_type": "yarn", "factor": 4.0,
                                                      "original_max_position_embeddings": 16,
                                                      "rope_theta": 1000000.0}), (30, 20, 6)),
    "llama-dynamic": (LlamaConfig, dict(tie_word_embeddings=False, max_position_embeddings=32,
                                        rope_parameters={"rope_type": "dynamic", "factor": 4.0,
                                                         "rope_theta": 10000.0}), (40, 20, 6)),
}

NOTES = ("HF transformers reference. last_logits: the logits at the prompt's last position "
         "(full vocabulary, float32 math, rounded to 7 significant digits). greedy_ids: "
         f"{NEW_TOKENS} tokens of greedy decoding with eos ignored (generate() with "
         "eos_token_id=None, checked against a plain argmax loop). For a bf16 checkpoint the "
         "weights are the bf16-rounded values loaded upcast to float32 (dtype=torch.float32), "
         "so the reference is f32 math on bf16 weights. Attention: eager.")


def round7(values):
    return [float(f"{v:.7g}") for v in values]


def make_prompts(seed, vocab, lengths=PROMPT_LENGTHS):
    rng = random.Random(seed)
    return [[rng.randrange(3, vocab) for _ in range(n)] for n in lengths]


def init_weights(model, seed):
    """Large random weights; norm weights around 1 and biases non-zero so every term matters."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            noise = torch.randn(p.shape, generator=gen, dtype=torch.float32)
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.2 * noise)
            else:
                p.copy_(INIT_STD * noise)


def load_f32(path):
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32,
                                                 attn_implementation="eager")
    return model.eval()


def reference_for(model, prompts):
    out = []
    for ids in prompts:
        x = torch.tensor([ids])
        with torch.no_grad():
            last = model(x).logits[0, -1].float()
            gen = model.generate(x, do_sample=False, max_new_tokens=NEW_TOKENS,
                                 min_new_tokens=NEW_TOKENS, eos_token_id=None, pad_token_id=0)
            greedy = gen[0, len(ids):].tolist()
            # The same tokens from a plain argmax loop: no logits processor slipped in.
            seq, margins = list(ids), []
            for _ in range(NEW_TOKENS):
                logits = model(torch.tensor([seq])).logits[0, -1]
                top2 = torch.topk(logits, 2).values
                margins.append(float(top2[0] - top2[1]))
                seq.append(int(torch.argmax(logits)))
        if seq[len(ids):] != greedy:
            sys.exit(f"generate() and the argmax loop disagree: {greedy} vs {seq[len(ids):]}")
        if len(greedy) != NEW_TOKENS:
            sys.exit(f"generation stopped early: {greedy}")
        out.append({"prompt_ids": ids, "greedy_ids": greedy,
                    "greedy_min_margin": round(min(margins), 6),
                    "last_logits": round7(last.tolist())})
    return out


def reset_dynamic_rope(model):
    """HF's dynamic rope keeps the longest length it has seen across calls: start each prompt
    from the model's own frequencies, as a freshly loaded model would."""
    rope = model.model.rotary_emb
    if hasattr(rope, "original_inv_freq"):
        rope.inv_freq = rope.original_inv_freq.clone()
        rope.max_seq_len_cached = rope.original_max_seq_len


def generate_reference(model, prompts, new_tokens):
    """Greedy generate() with its own KV cache (margins from its scores): the path whose rope
    state is what Loom's rule matches for dynamic scaling; no argmax re-run without a cache."""
    out = []
    for ids in prompts:
        x = torch.tensor([ids])
        with torch.no_grad():
            reset_dynamic_rope(model)
            last = model(x).logits[0, -1].float()
            reset_dynamic_rope(model)
            gen = model.generate(x, do_sample=False, max_new_tokens=new_tokens,
                                 min_new_tokens=new_tokens, eos_token_id=None, pad_token_id=0,
                                 return_dict_in_generate=True, output_scores=True)
        greedy = gen.sequences[0, len(ids):].tolist()
        margins = []
        for step, scores in enumerate(gen.scores):
            top2 = torch.topk(scores[0], 2)
            if int(top2.indices[0]) != greedy[step]:
                sys.exit(f"generate() picked {greedy[step]}, its scores say {int(top2.indices[0])}")
            margins.append(float(top2.values[0] - top2.values[1]))
        if len(greedy) != new_tokens:
            sys.exit(f"generation stopped early: {greedy}")
        out.append({"prompt_ids": ids, "greedy_ids": greedy,
                    "greedy_min_margin": round(min(margins), 6),
                    "last_logits": round7(last.tolist())})
    return out


def build_model(config_cls, overrides, seed):
    """A model of COMMON's shape with `overrides`, its large random weights seeded."""
    kwargs = dict(COMMON)
    kwargs.update(overrides)
    config = config_cls(**kwargs)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    init_weights(model, seed=seed)
    return config, model


DTYPE_NAMES = {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}


def save_with_reference(out_dir, name, label, config, model, torch_dtype, reference, shard=None):
    """models/NAME-LABEL: the checkpoint in `torch_dtype` (sharded at `shard`, if given) and the
    reference `reference(loaded_f32_model)` computes for it."""
    path = os.path.join(out_dir, "models", f"{name}-{label}")
    shutil.rmtree(path, ignore_errors=True)
    saved = copy.deepcopy(model).to(torch_dtype)
    if shard:
        saved.save_pretrained(path, safe_serialization=True, max_shard_size=shard)
    else:
        saved.save_pretrained(path, safe_serialization=True)
    ref = reference(load_f32(path))
    for p in ref:
        if len(set(p["greedy_ids"])) < 4:
            sys.exit(f"{name}-{label}: degenerate greedy output {p['greedy_ids']}")
    write_reference(os.path.join(path, "reference.json"), DTYPE_NAMES[torch_dtype], ref,
                    {"model": name, "architecture": config.architectures[0]
                     if config.architectures else type(model).__name__})
    distinct = [len(set(p["greedy_ids"])) for p in ref]
    print(f"{name}-{label}: {type(model).__name__}, distinct greedy tokens {distinct}, "
          f"min margin {min(p['greedy_min_margin'] for p in ref):.4f}")


def make_feature_models(out_dir):
    for index, (name, (config_cls, overrides, lengths)) in enumerate(FEATURE_MODELS.items()):
        config, model = build_model(config_cls, overrides, 3000 + index)
        prompts = make_prompts(4000 + index, config.vocab_size, lengths)
        variants = (("f32", torch.float32, None), ("bf16", torch.bfloat16, None),
                    ("f16", torch.float16, None), ("f16-sharded", torch.float16, "40KB"))
        for label, torch_dtype, shard in variants:
            save_with_reference(out_dir, name, label, config, model, torch_dtype,
                                lambda m: generate_reference(m, prompts, FEATURE_NEW_TOKENS),
                                shard)


def make_text_reference(out_dir):
    """The committed trained model (models/war-and-peace): HF's tokenizer and greedy generate
    from a text prompt, decoded, so a test can check text in, text out."""
    from transformers import AutoTokenizer
    doc = {"transformers_version": transformers.__version__,
           "torch_version": torch.__version__.split("+")[0],
           "notes": "HF tokenizer + greedy generate (f32 math on the stored values), eos ignored; "
                    "text is tokenizer.decode of the new ids", "versions": {}}
    for version in ("v1", "v2"):
        path = os.path.join(REPO, "models", "war-and-peace", version)
        tok = AutoTokenizer.from_pretrained(path)
        model = load_f32(path)
        entries = []
        for prompt in ("Prince Andrew", "\"Well, Prince, so Genoa and Lucca"):
            ids = tok(prompt, return_tensors="pt").input_ids
            with torch.no_grad():
                gen = model.generate(ids, do_sample=False, max_new_tokens=FEATURE_NEW_TOKENS,
                                     min_new_tokens=FEATURE_NEW_TOKENS, eos_token_id=None,
                                     pad_token_id=0)
            new = gen[0, ids.shape[1]:].tolist()
            entries.append({"prompt": prompt, "prompt_ids": ids[0].tolist(), "greedy_ids": new,
                            "text": tok.decode(new)})
            print(f"war-and-peace {version}: {prompt!r} -> {tok.decode(new)!r}")
        doc["versions"][version] = entries
    os.makedirs(os.path.join(out_dir, "war-and-peace"), exist_ok=True)
    with open(os.path.join(out_dir, "war-and-peace", "reference.json"), "w") as f:
        json.dump(doc, f, indent=1, ensure_ascii=False)
        f.write("\n")


def write_reference(path, dtype, prompts_ref, extra=None):
    doc = {"transformers_version": transformers.__version__,
           "torch_version": torch.__version__.split("+")[0],
           "dtype": dtype, "compute_dtype": "float32", "notes": NOTES}
    doc.update(extra or {})
    doc["prompts"] = prompts_ref
    with open(path, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")


def make_random_models(out_dir):
    for index, (name, (config_cls, overrides)) in enumerate(MODELS.items()):
        config, model = build_model(config_cls, overrides, 1000 + index)
        prompts = make_prompts(2000 + index, config.vocab_size)
        for label, torch_dtype in (("f32", torch.float32), ("bf16", torch.bfloat16)):
            save_with_reference(out_dir, name, label, config, model, torch_dtype,
                                lambda m: reference_for(m, prompts))


# ---- stories260K ----------------------------------------------------------------------------

def read_llama2c(path):
    """The llama2.c checkpoint as numpy arrays in llama2.c's own layout (run.c's order)."""
    raw = np.fromfile(path, dtype=np.uint8)
    dim, hidden, layers, heads, kv_heads, vocab, seq_len = np.frombuffer(raw[:28], np.int32)
    shared = vocab > 0
    vocab = abs(int(vocab))
    hs = dim // heads
    kv_dim = kv_heads * hs
    f = np.frombuffer(raw[28:], np.float32)
    pos = 0

    def take(*shape):
        nonlocal pos
        n = int(np.prod(shape))
        a = f[pos:pos + n].reshape(shape).astype(np.float64)
        pos += n
        return a

    w = dict(emb=take(vocab, dim), rms_att=take(layers, dim), wq=take(layers, dim, dim),
             wk=take(layers, kv_dim, dim), wv=take(layers, kv_dim, dim),
             wo=take(layers, dim, dim), rms_ffn=take(layers, dim),
             w1=take(layers, hidden, dim), w2=take(layers, dim, hidden),
             w3=take(layers, hidden, dim), rms_final=take(dim))
    pos += seq_len * hs  # legacy rotary tables
    w["wcls"] = w["emb"] if shared else take(vocab, dim)
    cfg = dict(dim=int(dim), layers=int(layers), heads=int(heads), kv_heads=int(kv_heads),
               hs=int(hs), vocab=vocab)
    return cfg, w


def llama2c_forward(cfg, w, tokens):
    """run.c's forward pass (interleaved rotary on the raw weights), float64, all positions."""
    def rmsnorm(x, g):
        return x * g / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + 1e-5)

    T, hs = len(tokens), cfg["hs"]
    x = w["emb"][tokens]
    pos = np.arange(T)[:, None]
    freq = 1.0 / 10000.0 ** (np.arange(0, hs, 2) / hs)  # per pair within a head
    cos, sin = np.cos(pos * freq), np.sin(pos * freq)   # [T, hs/2]

    def rope(v, n_heads):
        v = v.reshape(T, n_heads, hs // 2, 2)
        a, b = v[..., 0], v[..., 1]
        c, s = cos[:, None, :], sin[:, None, :]
        return np.stack([a * c - b * s, a * s + b * c], axis=-1).reshape(T, n_heads * hs)

    group = cfg["heads"] // cfg["kv_heads"]
    mask = np.triu(np.full((T, T), -np.inf), 1)
    for l in range(cfg["layers"]):
        xb = rmsnorm(x, w["rms_att"][l])
        q = rope(xb @ w["wq"][l].T, cfg["heads"]).reshape(T, cfg["heads"], hs)
        k = rope(xb @ w["wk"][l].T, cfg["kv_heads"]).reshape(T, cfg["kv_heads"], hs)
        v = (xb @ w["wv"][l].T).reshape(T, cfg["kv_heads"], hs)
        att = np.empty((T, cfg["heads"], hs))
        for h in range(cfg["heads"]):
            scores = q[:, h] @ k[:, h // group].T / math.sqrt(hs) + mask
            p = np.exp(scores - scores.max(axis=1, keepdims=True))
            att[:, h] = (p / p.sum(axis=1, keepdims=True)) @ v[:, h // group]
        x = x + att.reshape(T, -1) @ w["wo"][l].T
        xb = rmsnorm(x, w["rms_ffn"][l])
        h1 = xb @ w["w1"][l].T
        x = x + ((h1 / (1 + np.exp(-h1))) * (xb @ w["w3"][l].T)) @ w["w2"][l].T
    return rmsnorm(x, w["rms_final"]) @ w["wcls"].T


def sample_llama2c(cfg, w, seed, length):
    """A sequence the trained model itself writes from BOS (temperature 1): TinyStories-like ids."""
    rng = np.random.default_rng(seed)
    seq = [1]
    while len(seq) < length:
        logits = llama2c_forward(cfg, w, seq)[-1]
        p = np.exp(logits - logits.max())
        seq.append(int(rng.choice(len(p), p=p / p.sum())))
    return seq


def mean_nll(model, seq):
    with torch.no_grad():
        logits = model(torch.tensor([seq])).logits[0, :-1].double()
    return float(torch.nn.functional.cross_entropy(logits, torch.tensor(seq[1:])))


def unpermute_qk(src_dir, dst_dir, cfg):
    """A deliberately wrong conversion: q/k rows left in llama2.c's interleaved order."""
    shutil.copytree(src_dir, dst_dir)
    tensors = load_file(os.path.join(src_dir, "model.safetensors"))
    hs = cfg["hs"]
    for name, t in tensors.items():
        heads = (cfg["heads"] if "q_proj" in name else cfg["kv_heads"] if "k_proj" in name
                 else 0)
        if heads:  # inverse of HF row p*hs/2 + j <- llama2.c row 2j + p
            tensors[name] = (t.view(heads, 2, hs // 2, -1).transpose(1, 2)
                             .reshape(t.shape).contiguous())
    save_file(tensors, os.path.join(dst_dir, "model.safetensors"), metadata={"format": "pt"})


def make_stories(out_dir, converter, fixtures):
    src = os.path.join(fixtures, "models", "stories260K", "stories260K.bin")
    if not os.path.exists(src):
        sys.exit(f"{src} not found (pass --fixtures)")
    if not os.access(converter, os.X_OK):
        sys.exit(f"converter {converter} not found: build it (ninja loom-convert-llama2c) "
                 "or pass --converter")
    cfg, w = read_llama2c(src)
    with tempfile.TemporaryDirectory() as tmp:
        good_dir, bad_dir = os.path.join(tmp, "converted"), os.path.join(tmp, "unpermuted")
        subprocess.run([converter, "--input", src, "--output", good_dir], check=True)
        unpermute_qk(good_dir, bad_dir, cfg)
        good, bad = load_f32(good_dir), load_f32(bad_dir)

        # 1. HF on the converted weights == llama2.c's own forward on the raw file.
        probe = sample_llama2c(cfg, w, seed=7, length=64)
        with torch.no_grad():
            hf = good(torch.tensor([probe])).logits[0].double().numpy()
        max_diff = float(np.abs(hf - llama2c_forward(cfg, w, probe)).max())
        # 2. The trained model predicts its own text well; a wrongly permuted one does not.
        held_out = [sample_llama2c(cfg, w, seed=s, length=128) for s in (11, 12, 13)]
        nll_good = float(np.mean([mean_nll(good, s) for s in held_out]))
        nll_bad = float(np.mean([mean_nll(bad, s) for s in held_out]))
        greedy = good.generate(torch.tensor([[1]]), do_sample=False, max_new_tokens=64,
                               min_new_tokens=64, eos_token_id=None, pad_token_id=0)[0].tolist()
        print(f"stories260K: max |HF - llama2.c forward| = {max_diff:.2e}")
        print(f"stories260K: mean NLL on sampled stories: converted {nll_good:.3f} nats "
              f"(ppl {math.exp(nll_good):.2f}), unpermuted q/k {nll_bad:.3f} nats "
              f"(ppl {math.exp(nll_bad):.2f}), uniform {math.log(cfg['vocab']):.3f}")
        print(f"stories260K: greedy from BOS: {greedy}")
        if max_diff > 1e-3 or nll_good > nll_bad - 0.5 or len(set(greedy)) < 16:
            sys.exit("stories260K conversion check failed")

        # Prompts: prefixes of three stories the model writes itself (real TinyStories ids).
        stories = [sample_llama2c(cfg, w, seed=s, length=n)
                   for s, n in zip((21, 22, 23), PROMPT_LENGTHS)]
        ref = reference_for(good, stories)
        path = os.path.join(out_dir, "llama2c-stories")
        os.makedirs(path, exist_ok=True)
        write_reference(os.path.join(path, "reference.json"), "float32", ref, {
            "model": "stories260K",
            "source": "../shared/fixtures/models/stories260K/stories260K.bin converted by "
                      "loom-convert-llama2c --dtype float32",
            "checks": {"max_abs_logit_diff_vs_llama2c_forward": max_diff,
                       "mean_nll_converted": round(nll_good, 4),
                       "mean_nll_unpermuted_qk": round(nll_bad, 4),
                       "greedy_from_bos": greedy}})


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=os.path.join(REPO, "tests", "data"))
    parser.add_argument("--converter",
                        default=os.path.join(REPO, "build", "tools", "loom-convert-llama2c"))
    parser.add_argument("--fixtures", default=os.path.join(REPO, "..", "shared", "fixtures"))
    parser.add_argument("--skip-stories", action="store_true",
                        help="only the random models (no converter needed)")
    parser.add_argument("--only-features", action="store_true",
                        help="only the models of FEATURE_MODELS")
    args = parser.parse_args()
    torch.set_num_threads(1)  # one reduction order, so reruns give the same digits
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    if not args.only_features:
        make_random_models(args.out)
    make_feature_models(args.out)
    make_text_reference(args.out)
    if not args.skip_stories and not args.only_features:
        make_stories(args.out, args.converter, args.fixtures)


if __name__ == "__main__":
    main()
