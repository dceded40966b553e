#!/usr/bin/env python3
"""Produce the tokenizer reference fixtures in tests/data/tokenizers.

Usage (from the project root):

    /opt/loom-ref/bin/python tools/make_tokenizer_fixtures.py \
        --shared ../shared/fixtures --out tests/data/tokenizers

Every number written here comes from HF `tokenizers` (the Rust library through its Python
binding). `transformers` is only used to BUILD tokenizer.json files for the tokenizers that are
shipped as vocab/merges or as tiktoken / SentencePiece models. The run is deterministic: running
it twice gives byte-identical output (see tests/data/tokenizers/README.md).

The exact package versions are pinned in tools/requirements-reference.txt.
"""

import argparse
import base64
import copy
import hashlib
import json
import os
import shutil
import sys
import tempfile
import unicodedata

import tokenizers
from tokenizers import AddedToken, Regex, Tokenizer, pre_tokenizers, processors

MAX_FILE_BYTES = 1_900_000  # no committed file may be larger than this
BLOCK_SIZE = 1000
FNV_OFFSET = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3
MASK64 = (1 << 64) - 1

# Pattern of Meta's Llama 3 tiktoken tokenizer (llama-models models/llama3/tokenizer.py).
LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)


# Pattern of the Qwen2 tokenizer (single digits, unlike Llama 3's \p{N}{1,3}).
QWEN2_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def llama3_special_tokens():
    """The 256 special tokens 128000..128255 of Llama 3.1 / 3.2 as in their HF tokenizer.json."""
    named = [
        "<|begin_of_text|>",  # 128000
        "<|end_of_text|>",  # 128001
        "<|reserved_special_token_0|>",  # 128002
        "<|reserved_special_token_1|>",  # 128003
        "<|finetune_right_pad_id|>",  # 128004
        "<|reserved_special_token_2|>",  # 128005
        "<|start_header_id|>",  # 128006
        "<|end_header_id|>",  # 128007
        "<|eom_id|>",  # 128008
        "<|eot_id|>",  # 128009
        "<|python_tag|>",  # 128010
    ]
    reserved = [f"<|reserved_special_token_{i}|>" for i in range(3, 3 + 256 - len(named))]
    tokens = named + reserved
    assert len(tokens) == 256 and tokens[-1] == "<|reserved_special_token_247|>"
    return tokens


# ----------------------------------------------------------------------------------------------
# Builders. Each returns (tokenizers.Tokenizer, description of how it was built).
# ----------------------------------------------------------------------------------------------


def build_shared(shared, name):
    path = os.path.join(shared, "tokenizers", name, "tokenizer.json")
    return Tokenizer.from_file(path), f"tokenizers/{name}/tokenizer.json from the shared fixtures, used as is"


def llama2_patch(shared):
    """The shared llama2/tokenizer.json has U+00A0 (no-break space) turned into U+0020 in four
    vocab entries (ids 8655, 17891, 20246, 30081) and so in three merges ('   ', '     ', '▁  ').
    Those merges are ambiguous in the 'a b' string form and HF tokenizers refuses the file
    ("Merges text file invalid"). The real Llama 2 vocabulary has U+00A0 there (the phi3-mini
    file, which carries the same Llama 2 vocabulary, confirms each id). Compute the minimal patch
    that restores them; it is committed as llama2/tokenizer.patch.json."""
    base_rel = "tokenizers/llama2/tokenizer.json"
    base = json.load(open(os.path.join(shared, base_rel), encoding="utf-8"))
    ref_vocab = json.load(open(os.path.join(shared, "tokenizers/phi3-mini/tokenizer.json"), encoding="utf-8"))["model"]["vocab"]
    ref_inv = {i: t for t, i in ref_vocab.items()}
    vocab = base["model"]["vocab"]
    renames = []
    for tok, i in sorted(vocab.items(), key=lambda kv: kv[1]):
        if " " in tok:
            fixed = tok.replace(" ", "\u00a0")
            assert fixed not in vocab and ref_inv.get(i) == fixed, (tok, i, ref_inv.get(i))
            renames.append({"id": i, "from": tok, "to": fixed})
    new_vocab = dict(vocab)
    for r in renames:
        del new_vocab[r["from"]]
        new_vocab[r["to"]] = r["id"]
    merges = []
    for idx, m in enumerate(base["model"]["merges"]):
        assert isinstance(m, str)
        if m.count(" ") == 1 and all(part in new_vocab for part in m.split(" ")):
            continue
        # Keep exactly one space as the separator, the others become U+00A0; it must be unique.
        cands = []
        for k, c in enumerate(m):
            if c != " ":
                continue
            a = m[:k].replace(" ", "\u00a0")
            b = m[k + 1:].replace(" ", "\u00a0")
            if a and b and a in new_vocab and b in new_vocab and a + b in new_vocab:
                cands.append(a + " " + b)
        assert len(cands) == 1, (idx, m, cands)
        merges.append({"index": idx, "from": m, "to": cands[0]})
    patch = {
        "base": base_rel,
        "why": (
            "The shared file has U+00A0 replaced by U+0020 in these vocab entries and merges, so "
            "its merges are ambiguous and HF tokenizers cannot load it; the patch restores the "
            "real Llama 2 entries (the phi3-mini file has the same vocabulary with U+00A0)."
        ),
        "vocab_rename": renames,
        "merges_replace": merges,
    }
    return base, patch


def apply_llama2_patch(base, patch):
    """Python twin of the C++ rule: rename the vocab keys (same id), replace the merges by index."""
    j = copy.deepcopy(base)
    vocab = j["model"]["vocab"]
    for r in patch["vocab_rename"]:
        assert vocab.pop(r["from"]) == r["id"]
        vocab[r["to"]] = r["id"]
    for m in patch["merges_replace"]:
        assert j["model"]["merges"][m["index"]] == m["from"]
        j["model"]["merges"][m["index"]] = m["to"]
    return j


def build_llama2(shared):
    base, patch = llama2_patch(shared)
    patched = apply_llama2_patch(base, patch)
    tok = Tokenizer.from_str(json.dumps(patched, ensure_ascii=False))
    desc = (
        "tokenizers/llama2/tokenizer.json from the shared fixtures with llama2/tokenizer.patch.json "
        "applied (4 vocab keys and 3 merges where U+00A0 had become U+0020; unpatched, HF "
        "tokenizers cannot load the file)"
    )
    return tok, desc, patch


def build_qwen(shared, config_name):
    """Qwen2/2.5/3: transformers' Qwen2Tokenizer from vocab.json + merges.txt + one tokenizer_config."""
    from transformers import Qwen2Tokenizer

    src = os.path.join(shared, "tokenizers", "qwen2")
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copy(os.path.join(src, "vocab.json"), tmp)
        shutil.copy(os.path.join(src, "merges.txt"), tmp)
        shutil.copy(os.path.join(src, config_name), os.path.join(tmp, "tokenizer_config.json"))
        hf = Qwen2Tokenizer.from_pretrained(tmp)
        out = os.path.join(tmp, "saved")
        hf.save_pretrained(out)
        tok = Tokenizer.from_file(os.path.join(out, "tokenizer.json"))
        config = json.load(open(os.path.join(src, config_name), encoding="utf-8"))

    # Every added token of the config must be present with the config's flags.
    added = {t.content: (i, t) for i, t in tok.get_added_tokens_decoder().items()}
    for sid, spec in config["added_tokens_decoder"].items():
        i, t = added[spec["content"]]
        assert i == int(sid), (spec, i)
        for flag in ("lstrip", "rstrip", "normalized", "single_word", "special"):
            assert getattr(t, flag) == spec[flag], (spec, flag)
    assert len(added) == len(config["added_tokens_decoder"]), "unexpected extra added tokens"

    # The real Qwen2 tokenizer.json (e.g. Qwen/Qwen2-1.5B-Instruct) uses ByteLevel components with
    # add_prefix_space=false, trim_offsets=false, use_regex=false everywhere, and a ByteLevel
    # post-processor. transformers 5 writes ByteLevel defaults and an empty TemplateProcessing
    # instead; the ids and the decoded text are the same either way (those options only move
    # offsets), but the file should look like the real one, so set them as the real file has.
    built = json.loads(tok.to_str())
    assert built["normalizer"] == {"type": "NFC"}, built["normalizer"]
    assert built["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] == QWEN2_PATTERN
    assert built["model"]["ignore_merges"] is False
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
        ]
    )
    tok.post_processor = processors.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    # The Python binding's decoders.ByteLevel() ignores its options, so set them in the JSON.
    j = json.loads(tok.to_str())
    j["decoder"] = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}
    tok = Tokenizer.from_str(json.dumps(j, ensure_ascii=False))
    j = json.loads(tok.to_str())
    assert j["decoder"]["add_prefix_space"] is False and j["decoder"]["use_regex"] is False, j["decoder"]
    assert j["normalizer"] == {"type": "NFC"}, j["normalizer"]
    split = j["pre_tokenizer"]["pretokenizers"][0]
    assert split["type"] == "Split" and split["behavior"] == "Isolated" and not split["invert"]
    assert split["pattern"]["Regex"] == QWEN2_PATTERN, split
    desc = (
        "transformers Qwen2Tokenizer.from_pretrained(tokenizers/qwen2/vocab.json + merges.txt + "
        f"{config_name} as tokenizer_config.json), saved, then the ByteLevel pre-tokenizer/"
        "post-processor/decoder options set to the real Qwen2 tokenizer.json values "
        "(add_prefix_space=false, trim_offsets=false, use_regex=false)"
    )
    return tok, desc


def build_llama3(shared):
    from transformers.convert_slow_tokenizer import TikTokenConverter

    class LocalTikTokenConverter(TikTokenConverter):
        # The tiktoken file format is one "base64(token) rank" per line; read it directly so the
        # `tiktoken` package is not needed.
        @staticmethod
        def load_tiktoken_bpe(path):
            ranks = {}
            with open(path, "rb") as f:
                for line in f.read().splitlines():
                    if line:
                        token, rank = line.split()
                        ranks[base64.b64decode(token)] = int(rank)
            return ranks

    model = os.path.join(shared, "tokenizers", "llama3", "tokenizer.model")
    tok = LocalTikTokenConverter(vocab_file=model, pattern=LLAMA3_PATTERN).converted()
    assert tok.get_vocab_size() == 128000
    specials = llama3_special_tokens()
    tok.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in specials])
    for i, t in enumerate(specials):
        assert tok.token_to_id(t) == 128000 + i, t
    tok.post_processor = processors.Sequence(
        [
            processors.ByteLevel(add_prefix_space=True, trim_offsets=False, use_regex=True),
            processors.TemplateProcessing(
                single="<|begin_of_text|> $A:0",
                pair="<|begin_of_text|>:0 $A:0 <|begin_of_text|>:1 $B:1",
                special_tokens=[("<|begin_of_text|>", 128000)],
            ),
        ]
    )
    desc = (
        "transformers TikTokenConverter(tokenizers/llama3/tokenizer.model, Llama 3 pattern).converted() "
        "(BPE ignore_merges=true, Split+ByteLevel pre-tokenizer, ByteLevel decoder), plus the 256 "
        "Llama 3.1/3.2 special tokens 128000..128255 (special, normalized=false) and the HF Llama 3 "
        "post-processor Sequence[ByteLevel, TemplateProcessing('<|begin_of_text|> $A')]"
    )
    return tok, desc


def build_mistral(shared):
    from transformers.convert_slow_tokenizer import LlamaConverter, import_protobuf
    from transformers.tokenization_utils_base import generate_merges

    model = os.path.join(shared, "tokenizers", "mistral-v1", "tokenizer.model")
    proto = import_protobuf().ModelProto()
    with open(model, "rb") as f:
        proto.ParseFromString(f.read())
    pieces = [p.piece for p in proto.pieces]
    assert pieces[:3] == ["<unk>", "<s>", "</s>"], pieces[:3]
    assert proto.trainer_spec.model_type == 2  # BPE

    class SlowTokenizerShim:
        """What LlamaConverter reads from a slow LlamaTokenizer(legacy=True)."""

        vocab_file = model
        legacy = True
        add_prefix_space = True

        def convert_ids_to_tokens(self, i):
            return pieces[i]

    class Extractor:
        # transformers 4.x SentencePieceExtractor.extract(vocab_scores): merges of every piece
        # whose two halves are pieces, ordered by the merged piece's score.
        def __init__(self, _model):
            pass

        def extract(self, vocab_scores):
            vocab = {p: i for i, p in enumerate(pieces)}
            return vocab, generate_merges(vocab, vocab_scores)

    class MistralConverter(LlamaConverter):
        SpmExtractor = Extractor

    tok = MistralConverter(SlowTokenizerShim()).converted()
    # LlamaTokenizerFast(legacy=True) adds <unk>, <s>, </s> as special tokens and BOS by template.
    tok.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in ("<unk>", "<s>", "</s>")])
    for i, t in enumerate(("<unk>", "<s>", "</s>")):
        assert tok.token_to_id(t) == i
    tok.post_processor = processors.TemplateProcessing(
        single="<s>:0 $A:0", pair="<s>:0 $A:0 <s>:1 $B:1", special_tokens=[("<s>", 1)]
    )
    # Piece scores are all distinct among mergeable pieces, so the merge order does not depend on
    # how a converter breaks ties.
    desc = (
        "transformers LlamaConverter (slow->fast) on tokenizers/mistral-v1/tokenizer.model with "
        "legacy=true, add_prefix_space=true (normalizer Prepend+Replace, no pre-tokenizer, BPE "
        "byte_fallback, merges from piece scores), <unk>/<s>/</s> special (normalized=false), "
        "post-processor TemplateProcessing('<s> $A') as LlamaTokenizerFast(add_bos_token=True)"
    )
    return tok, desc


# name -> (builder, how committed: "shared" (nothing) | "patch" (small patch of the shared file) |
# "full" (tokenizer.json) | "overlay" (tokenizer.json minus vocab/merges), overlay sources)
TOKENIZERS = {
    "llama2": (build_llama2, "patch", None),
    "phi3-mini": (lambda s: build_shared(s, "phi3-mini"), "shared", None),
    "phi2-gpt2": (lambda s: build_shared(s, "phi2-gpt2"), "shared", None),
    "qwen2": (lambda s: build_qwen(s, "tokenizer_config.json"), "overlay",
              ("tokenizers/qwen2/vocab.json", "tokenizers/qwen2/merges.txt")),
    "qwen2.5": (lambda s: build_qwen(s, "tokenizer_config.qwen2.5.json"), "overlay",
                ("tokenizers/qwen2/vocab.json", "tokenizers/qwen2/merges.txt")),
    "qwen3": (lambda s: build_qwen(s, "tokenizer_config.qwen3.json"), "overlay",
              ("tokenizers/qwen2/vocab.json", "tokenizers/qwen2/merges.txt")),
    "llama3": (build_llama3, "overlay", ("tokenizers/llama3/encoder.json", "tokenizers/llama3/vocab.bpe")),
    "mistral-v1": (build_mistral, "full", None),
}


# ----------------------------------------------------------------------------------------------
# Overlay: tokenizer.json without model.vocab / model.merges, re-assembled from shared files.
# ----------------------------------------------------------------------------------------------


def read_merges_lines(path):
    """The C++ reading rule: split on '\\n', drop a first line starting with '#version', skip
    empty lines; each remaining line is 'a b' with exactly one space."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    if lines and lines[0].startswith("#version"):
        lines = lines[1:]
    out = []
    for line in lines:
        if line == "":
            continue
        assert line.count(" ") == 1 and "\r" not in line, repr(line)
        out.append(line)
    return out


def assemble(overlay, shared):
    """Python twin of the C++ assembly: insert vocab and merges into overlay['model']."""
    j = copy.deepcopy(overlay)
    spec = j.pop("loom_assemble")
    with open(os.path.join(shared, spec["vocab"]), encoding="utf-8") as f:
        vocab = json.load(f)
    lines = read_merges_lines(os.path.join(shared, spec["merges"]))
    if spec["merges_format"] == "pairs":
        merges = [line.split(" ") for line in lines]
    else:
        merges = lines
    j["model"]["vocab"] = vocab
    j["model"]["merges"] = merges
    return j


def make_overlay(tok_json_str, vocab_rel, merges_rel, shared):
    full = json.loads(tok_json_str)
    merges = full["model"]["merges"]
    fmt = "pairs" if merges and isinstance(merges[0], list) else "strings"
    overlay = {}
    for k, v in full.items():
        if k == "model":
            v = {mk: mv for mk, mv in v.items() if mk not in ("vocab", "merges")}
        overlay[k] = v
    overlay["loom_assemble"] = {
        "vocab": vocab_rel,
        "merges": merges_rel,
        "merges_format": fmt,
        "note": (
            "Insert into model: 'vocab' = the JSON object (token -> id) read from the file at "
            "'vocab'; 'merges' = the lines of the text file at 'merges' (split on \\n, a first "
            "line starting with '#version' dropped, empty lines skipped), each line 'a b' written "
            "as the pair [\"a\", \"b\"] when merges_format is 'pairs' or kept as the string 'a b' "
            "when it is 'strings'. Paths are relative to the shared fixtures root. Then remove "
            "this 'loom_assemble' key."
        ),
    }
    back = assemble(overlay, shared)
    if back != full:
        diff = [k for k in full["model"] if back["model"].get(k) != full["model"][k]]
        raise SystemExit(f"overlay does not re-assemble to the HF tokenizer.json (model keys differ: {diff})")
    # Same vocab and merge ORDER (list equality above already checks merges order; vocab is a
    # dict, also check the id sequence, which is what the file order carries).
    assert sorted(back["model"]["vocab"].values()) == sorted(full["model"]["vocab"].values())
    return overlay


# ----------------------------------------------------------------------------------------------
# Corpus
# ----------------------------------------------------------------------------------------------


class Rng:
    """xorshift64*: deterministic across Python versions (random.Random is not relied on)."""

    def __init__(self, seed):
        self.s = seed & MASK64 or 1

    def next(self):
        x = self.s
        x ^= (x >> 12)
        x ^= (x << 25) & MASK64
        x ^= (x >> 27)
        self.s = x
        return (x * 0x2545F4914F6CDD1D) & MASK64

    def below(self, n):
        return self.next() % n

    def choice(self, seq):
        return seq[self.below(len(seq))]


PROSE = [
    "Hello world",
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "It was the best of times, it was the worst of times.",
    "I'm sure you'll agree that we've done what we'd planned; they're here and it's fine.",
    "DON'T SHOUT. I'LL HEAR YOU. We'Ve Said It'S Mixed Case.",
    "Mr. Smith paid $1,234.56 for 3 items on 2024-01-15 at 10:30am (a 15% discount).",
    "Email me at john.doe@example.com or visit https://example.org/path?q=1&r=two#frag",
    "\"Quoted,\" she said, 'and single-quoted' too... right?!",
    "Semicolons; colons: dashes - en dashes \u2013 em dashes \u2014 and ellipses \u2026",
    "Tokenization is the process of splitting text into tokens.",
    "A sentence with trailing space ",
    " A sentence with leading space",
    "  Two leading spaces and two trailing  ",
    "UPPERCASE lowercase MiXeDcAsE camelCase snake_case kebab-case PascalCase",
    "antidisestablishmentarianism pneumonoultramicroscopicsilicovolcanoconiosis",
    "supercalifragilisticexpialidocious",
    "a b c d e f g h i j k l m n o p q r s t u v w x y z",
    "The year 1984, the number 3.14159, and -42 are all numbers.",
    "Line one\nLine two\nLine three",
    "Paragraph one.\n\nParagraph two.\n\n\nParagraph three.",
    "Windows line\r\nendings\r\nhere",
    "Old Mac\rline endings",
    "Tabs\tbetween\twords",
    "Caf\u00e9 na\u00efve r\u00e9sum\u00e9 co\u00f6perate fa\u00e7ade se\u00f1or \u00fcber stra\u00dfe",
    "\u00bfQu\u00e9 tal? \u00a1Muy bien!",
    "\u00c6sir \u00d8resund \u00c5ngstr\u00f6m \u0152uvre",
    "Zo\u00eb's cr\u00e8me br\u00fbl\u00e9e",
    "Hello\u00a0non-breaking\u00a0space",
    "Price: \u20ac100, \u00a350, \u00a5800, \u20b91000, \u20a9500",
    "Math: \u2200x\u2208\u211d, x\u00b2 \u2265 0; \u2211\u1d62 a\u1d62 = \u221e; \u03b1+\u03b2=\u03b3",
    "Greek: \u039a\u03b1\u03bb\u03b7\u03bc\u03ad\u03c1\u03b1 \u03ba\u03cc\u03c3\u03bc\u03b5",
    "Russian: \u041f\u0440\u0438\u0432\u0435\u0442, \u043a\u0430\u043a \u0434\u0435\u043b\u0430? \u0412\u043e\u0439\u043d\u0430 \u0438 \u043c\u0438\u0440.",
    "Ukrainian: \u0490\u0430\u043d\u043e\u043a \u0457\u0436\u0430\u043a \u0454\u0434\u043d\u0456\u0441\u0442\u044c",
    "Turkish: \u0130stanbul \u0131\u015f\u0131k \u011f\u00fc\u00e7l\u00fc \u00f6\u011frenci",
    "Vietnamese: Ti\u1ebfng Vi\u1ec7t c\u00f3 d\u1ea5u thanh \u0111\u1eb9p",
    "Polish: Za\u017c\u00f3\u0142\u0107 g\u0119\u015bl\u0105 ja\u017a\u0144",
    "Unicode quotes \u201cdouble\u201d \u2018single\u2019 \u00abguillemets\u00bb \u300cbrackets\u300d",
    "Roman numerals \u2160 \u2161 \u2162, fractions \u00bd \u00be, superscripts x\u00b9\u00b2\u00b3",
    "Full-width \uff21\uff22\uff23\uff11\uff12\uff13\uff01\uff1f",
    "Ligatures \ufb01 \ufb02 and compatibility \u2126 \u212b \u2122",
    "What's the weather like today? I'd say it's 72\u00b0F.",
]

CODE = [
    "def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n",
    "import os\nimport sys\n\n\nclass Foo(object):\n    \"\"\"Docstring.\"\"\"\n\n    def __init__(self, x: int = 0) -> None:\n        self.x = x  # comment\n",
    "for i in range(10):\n\tprint(f\"{i:03d}\", end='')\n",
    "if __name__ == \"__main__\":\n    main()\n",
    "lambda x: x ** 2 if x != 0 else -1",
    "x = [a for a in b if a is not None and a >= 0]",
    "#include <iostream>\n#include <vector>\n\nint main(int argc, char** argv) {\n  std::vector<int> v{1, 2, 3};\n  for (auto& x : v) std::cout << x << '\\n';\n  return 0;\n}\n",
    "template <typename T>\nstatic inline T clamp(T v, T lo, T hi) noexcept { return v < lo ? lo : (hi < v ? hi : v); }",
    "struct Foo {\n\tint a;\n\tfloat b;\n};\n",
    "ptr->member = &other; x <<= 2; y >>= 3; z ^= ~w; a && b || !c;",
    "std::unique_ptr<std::map<std::string, std::vector<int>>> m = std::make_unique<decltype(m)::element_type>();",
    "// C++ comment\n/* block\n   comment */\n",
    "{\"name\": \"Loom\", \"version\": 1, \"tags\": [\"llm\", \"serving\"], \"nested\": {\"a\": null, \"b\": true, \"c\": 3.5e-7}}",
    "{\n  \"key\": \"value\",\n  \"list\": [\n    1,\n    2\n  ]\n}",
    "[{\"id\":1},{\"id\":2},{\"id\":3}]",
    "SELECT id, name FROM users WHERE age > 21 ORDER BY name DESC LIMIT 10;",
    "<html><body><div class=\"main\" id='x'>Hello &amp; welcome</div></body></html>",
    "$ ls -la | grep '.py' > out.txt 2>&1 && echo \"done\"",
    "fn main() { let v: Vec<u8> = vec![0xff, 0x00]; println!(\"{:?}\", v); }",
    "func (s *Server) Handle(w http.ResponseWriter, r *http.Request) error {\n\treturn nil\n}",
    "const f = async (a, b) => { await g(a?.b ?? c); return `${a}-${b}`; };",
    "    indented with four spaces\n        and eight\n            and twelve",
    "\tone tab\n\t\ttwo tabs\n\t\t\tthree tabs",
    "mixed \t indentation\n \t \tweird",
    "a_very_long_identifier_name_that_goes_on_and_on_and_on_without_any_break_whatsoever = 1",
    "0x7fffffff 0b101010 0o777 1e10 1.5e-3 6.02214076e23 3.0f 42ULL",
    "regex = r\"^(?:[a-z0-9!#$%&'*+/=?^_`{|}~-]+)@(?:[a-z0-9-]+\\.)+[a-z]{2,}$\"",
    "```python\nprint('hi')\n```",
    "# Markdown Title\n\n- item 1\n- item 2\n\n| a | b |\n|---|---|\n| 1 | 2 |",
    "!!!???...,,,;;;:::---___===+++***&&&%%%$$$###@@@",
]

CJK = [
    "\u4f60\u597d\uff0c\u4e16\u754c\uff01",
    "\u6211\u7231\u5317\u4eac\u5929\u5b89\u95e8\u3002",
    "\u4eca\u5929\u5929\u6c14\u5f88\u597d\uff0c\u6211\u4eec\u53bb\u516c\u56ed\u6563\u6b65\u5427\u3002",
    "\u5927\u8bed\u8a00\u6a21\u578b\u7684\u63a8\u7406\u670d\u52a1\u9700\u8981\u9ad8\u6548\u7684\u5206\u8bcd\u5668\u3002",
    "\u7e41\u9ad4\u4e2d\u6587\uff1a\u81fa\u7063\u7684\u570b\u8a9e\u8207\u6b77\u53f2\u3002",
    "\u3053\u3093\u306b\u3061\u306f\u4e16\u754c",
    "\u79c1\u306f\u65e5\u672c\u8a9e\u3092\u52c9\u5f37\u3057\u3066\u3044\u307e\u3059\u3002",
    "\u30ab\u30bf\u30ab\u30ca\u3068\u3072\u3089\u304c\u306a\u3068\u6f22\u5b57\u3092\u6df7\u305c\u305f\u6587\u3002",
    "\uff8a\uff9d\uff76\uff78\uff76\uff80\uff76\uff85 half-width katakana",
    "\uc548\ub155\ud558\uc138\uc694, \uc138\uacc4!",
    "\ud55c\uad6d\uc5b4\ub294 \uc544\ub984\ub2e4\uc6b4 \uc5b8\uc5b4\uc785\ub2c8\ub2e4.",
    "\u4e2d\u6587English\u6df7\u5408mixed\u6587\u672ctext",
    "\u6570\u5b57123\u548c\u7b26\u53f7\uff01\uff1f\u3002\uff0c",
    "\u3000\u5168\u89d2\u7a7a\u683c\u3000\u3067\u3059",
    "\U00020bb7\u91ce\u5bb6 \U0002000b (CJK Extension B)",
]

RTL_INDIC_SEA = [
    "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645",
    "\u0627\u0644\u0644\u063a\u0629 \u0627\u0644\u0639\u0631\u0628\u064a\u0629 \u062c\u0645\u064a\u0644\u0629 \u062c\u062f\u0627\u064b.",
    "\u0628\u0650\u0633\u0652\u0645\u0650 \u0627\u0644\u0644\u0651\u064e\u0647\u0650 \u0627\u0644\u0631\u0651\u064e\u062d\u0652\u0645\u064e\u0646\u0650",
    "\u0623\u0631\u0642\u0627\u0645 \u0639\u0631\u0628\u064a\u0629: \u0660\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669",
    "\u05e9\u05dc\u05d5\u05dd \u05e2\u05d5\u05dc\u05dd",
    "\u05e2\u05b4\u05d1\u05b0\u05e8\u05b4\u05d9\u05ea \u05e2\u05dd \u05e0\u05b4\u05e7\u05bc\u05d5\u05bc\u05d3",
    "Mixed \u05e2\u05d1\u05e8\u05d9\u05ea and English \u0648\u0627\u0644\u0639\u0631\u0628\u064a\u0629",
    "\u0928\u092e\u0938\u094d\u0924\u0947 \u0926\u0941\u0928\u093f\u092f\u093e",
    "\u0939\u093f\u0928\u094d\u0926\u0940 \u092d\u093e\u0937\u093e \u0926\u0947\u0935\u0928\u093e\u0917\u0930\u0940 \u0932\u093f\u092a\u093f \u092e\u0947\u0902 \u0932\u093f\u0916\u0940 \u091c\u093e\u0924\u0940 \u0939\u0948\u0964",
    "\u0915\u094d\u0937\u0924\u094d\u0930\u093f\u092f \u0936\u094d\u0930\u0940 \u0926\u094d\u0935\u093e\u0930 \u0966\u0967\u0968\u0969",
    "\u09ac\u09be\u0982\u09b2\u09be \u09ad\u09be\u09b7\u09be",
    "\u0ba4\u0bae\u0bbf\u0bb4\u0bcd \u0bae\u0bca\u0bb4\u0bbf",
    "\u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35\u0e04\u0e23\u0e31\u0e1a",
    "\u0e20\u0e32\u0e29\u0e32\u0e44\u0e17\u0e22\u0e44\u0e21\u0e48\u0e21\u0e35\u0e0a\u0e48\u0e2d\u0e07\u0e27\u0e48\u0e32\u0e07\u0e23\u0e30\u0e2b\u0e27\u0e48\u0e32\u0e07\u0e04\u0e33",
    "\u0e01\u0e33\u0e41\u0e1e\u0e07\u0e40\u0e1e\u0e0a\u0e23 \u0e51\u0e52\u0e53",
    "\u1781\u17d2\u1798\u17c2\u179a \u179f\u17bd\u179f\u17d2\u178f\u17b8",
    "\u10e5\u10d0\u10e0\u10d7\u10e3\u10da\u10d8 \u10d4\u10dc\u10d0",
    "\u0540\u0561\u0575\u0565\u0580\u0565\u0576",
    "\u12a0\u121b\u122d\u129b \u124b\u1295\u124b",
]

EMOJI = [
    "\U0001f600",
    "Hello \U0001f44b world \U0001f30d!",
    "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466 family",
    "\U0001f469\u200d\U0001f4bb\U0001f468\u200d\U0001f52c\U0001f9d1\u200d\U0001f680",
    "\U0001f44d\U0001f3fb\U0001f44d\U0001f3fc\U0001f44d\U0001f3fd\U0001f44d\U0001f3fe\U0001f44d\U0001f3ff",
    "\U0001f1fa\U0001f1f8\U0001f1ef\U0001f1f5\U0001f1e9\U0001f1ea\U0001f1eb\U0001f1f7 flags",
    "\U0001f3f4\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f England",
    "\u2764\ufe0f \u2764 \u263a\ufe0f \u2600\ufe0f",
    "1\ufe0f\u20e3 #\ufe0f\u20e3 *\ufe0f\u20e3 keycaps",
    "\U0001f3f3\ufe0f\u200d\U0001f308 \U0001f3f3\ufe0f\u200d\u26a7\ufe0f",
    "\U0001f9d1\U0001f3fd\u200d\U0001f91d\u200d\U0001f9d1\U0001f3fb",
    "\U0001f525\U0001f525\U0001f525\U0001f525\U0001f525\U0001f525\U0001f525\U0001f525",
    "emoji\U0001f680between\U0001f680words",
    "\U0001f642\U0001f643\U0001f644\U0001f928\U0001f9d0\U0001fae0\U0001fae1",
    "\u00a9\u00ae\u2122\u2713\u2717\u2605\u2606\u2660\u2663\u2665\u2666",
]

COMBINING = [
    "e\u0301",
    "\u00e9",
    "cafe\u0301 vs caf\u00e9",
    "A\u030a vs \u00c5 vs \u212b",
    "n\u0303o\u0308u\u0302",
    "a\u0300\u0301\u0302\u0303\u0304\u0305\u0306\u0307\u0308",
    "Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d\u034f\u0334\u0319\u0324\u031e\u0349\u035a\u032f\u031e\u0320\u034dalgo text",
    "\u1100\u1161\u11a8 decomposed Hangul vs \uac01",
    "\u1112\u1161\u11ab\u1100\u1173\u11af",
    "\u0915\u093c \u0958",
    "\u00c5ngstr\u00f6m / A\u030angstro\u0308m",
    "\u01c4 \u01c5 \u01c6 \u1e9b\u0323",
    "\u0041\u030c\u0323 \u1ea0\u030c",
    "o\u0308\u0304 \u022b",
    "\u0301 leading combining mark",
    "x\u20d7 \u20dd\u20de",
]

WHITESPACE = [
    " ",
    "  ",
    "   ",
    "    ",
    "     ",
    " " * 17,
    " " * 40,
    "\t",
    "\t\t",
    "\t\t\t\t",
    "\n",
    "\n\n",
    "\n\n\n",
    "\n" * 8,
    "\r\n",
    "\r\n\r\n",
    "\r",
    " \n",
    "\n ",
    " \n \n ",
    "\t\n\t\n",
    "\u00a0",
    "\u00a0\u00a0",
    "\u3000",
    "\u3000\u3000",
    "\u2009",
    "\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a",
    "\u200b zero width space \u200b",
    "\u200c\u200d\ufeff",
    "\u2028 line separator \u2029 paragraph separator",
    "\u000b\u000c vertical tab and form feed",
    "\u0085 next line",
    "word  word",
    "word   word",
    "word\t\tword",
    "word \t word",
    "word\n\nword",
    "word \n word",
    "word\r\n\r\nword",
    "trailing\n",
    "trailing \n",
    "trailing  ",
    "\nleading",
    "  leading",
    "\t\tleading",
    " x ",
    "  x  ",
    "a\u00a0b\u3000c\u2009d",
    "end with space ",
    "end with newlines\n\n\n",
    "x" + " " * 10 + "y",
    "x" + "\n" * 10 + "y",
    " \t \t \t ",
]

DIGITS = [
    "0",
    "7",
    "42",
    "123",
    "1234",
    "12345",
    "123456",
    "1234567",
    "12345678901234567890",
    "31415926535897932384626433832795028841971693993751",
    "00000000000000000000",
    "1,000,000",
    "1,234,567,890.123",
    "3.14159265358979",
    "-273.15",
    "+1 (555) 123-4567",
    "192.168.0.1:8080",
    "2024-02-29T23:59:59.999Z",
    "v1.2.3-rc.4+build.567",
    "\u0661\u0662\u0663 \u0967\u0968\u0969 \uff11\uff12\uff13",
    "1st 2nd 3rd 4th 11th 21st",
    "0.1 + 0.2 = 0.30000000000000004",
    "1e100 1E-100 0x1p-52",
]

LONG_WORDS = [
    "a" * 100,
    "ab" * 60,
    "x" * 257,
    "Llanfairpwllgwyngyllgogerychwyrndrobwllllantysiliogogogoch",
    "Rindfleischetikettierungs\u00fcberwachungsaufgaben\u00fcbertragungsgesetz",
    "\u4e00" * 64,
    "\U0001f600" * 30,
    "-" * 80,
    "=" * 64,
    "." * 50,
    "_" * 40,
    "*" * 33,
    "#" * 20,
    "/" * 24,
    "\u00e9" * 40,
    "\u0627" * 30,
]

# Special tokens of each family, and text that only looks like them.
SPECIALS = {
    "llama": ["<s>", "</s>", "<unk>"],
    "phi3": ["<|user|>", "<|assistant|>", "<|system|>", "<|end|>", "<|endoftext|>", "<|placeholder1|>"],
    "gpt2": ["<|endoftext|>"],
    "qwen": ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<think>", "</think>", "<tool_call>",
             "</tool_call>", "<|fim_prefix|>", "<|vision_pad|>", "<tool_response>", "<|object_ref_start|>"],
    "llama3": ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
               "<|eot_id|>", "<|eom_id|>", "<|python_tag|>", "<|reserved_special_token_0|>",
               "<|reserved_special_token_247|>", "<|finetune_right_pad_id|>"],
}

SPECIAL_IN_TEXT = [
    "<|im_start|>user\nhi<|im_end|>",
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|>assistant\n<think>\nLet me think.\n</think>\n\nThe answer is 4.<|im_end|>",
    "<tool_call>\n{\"name\": \"f\", \"arguments\": {}}\n</tool_call>",
    "<|fim_prefix|>def f(<|fim_suffix|>):\n    pass<|fim_middle|>",
    "<s>[INST] Hello [/INST] Hi there</s>",
    "<s> [INST] <<SYS>>\nsys\n<</SYS>>\n\nuser msg [/INST]",
    "Hello</s><s>World",
    "<s><s></s></s>",
    "text <unk> text",
    "<|user|>\nHello<|end|>\n<|assistant|>\nHi!<|end|>",
    "<|system|>You are helpful.<|end|><|user|> Question <|end|> <|assistant|>",
    "<|endoftext|>",
    "one<|endoftext|>two",
    "  <|endoftext|>  ",
    "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are helpful.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>",
    "<|begin_of_text|>Hello<|end_of_text|>",
    "<|python_tag|>print(1)<|eom_id|>",
    "<|reserved_special_token_0|><|reserved_special_token_100|><|reserved_special_token_247|>",
    "mixed <s> <|im_start|> <|endoftext|> <|begin_of_text|> <|user|> all",
]

LOOKALIKES = [
    "<|im_start",
    "im_start|>",
    "<|im_start |>",
    "<| im_start|>",
    "<|IM_START|>",
    "<|im_start|",
    "<|im_start|>>",
    "<<|im_start|>>",
    "< s>",
    "<s >",
    "<S>",
    "<<s>>",
    "<s",
    "s>",
    "</ s>",
    "<//s>",
    "<|endoftext|",
    "|endoftext|>",
    "<|endoftext>",
    "<|end_of_text>",
    "<|begin_of_text|",
    "<|begin of text|>",
    "<|eot_id||>",
    "<|user",
    "<|user |>",
    "<think",
    "<think >",
    "<<think>>",
    "</think",
    "<|reserved_special_token_248|>",
    "<|reserved_special_token_|>",
    "<unk",
    "<|placeholder7|>",
    "<|>",
    "<||>",
    "<>",
    "</>",
    "< | im_start | >",
]

SINGLE_CHARS = [
    "a", "Z", "0", "9", " ", "!", "\"", "#", "$", "%", "&", "'", "(", ")", "*", "+", ",", "-", ".", "/",
    ":", ";", "<", "=", ">", "?", "@", "[", "\\", "]", "^", "_", "`", "{", "|", "}", "~",
    "\u00e9", "\u00df", "\u00f1", "\u00ff", "\u0100", "\u0394", "\u03c9", "\u0416", "\u05d0", "\u0627",
    "\u0905", "\u0e01", "\u3042", "\u30a2", "\u4e2d", "\uac00", "\u20ac", "\u2603", "\u2122", "\ufb01",
    "\uff21", "\U0001f600", "\U0001f4a9", "\U00010348", "\U0001d11e", "\U0002070e", "\u00a0", "\u3000",
    "\u2009", "\u200b", "\u0301", "\u0009", "\u000a", "\u000d", "\u007f", "\u0001", "\u001b", "\ufeff",
    "\ufffc", "\U0010fffd", "\ue000", "\u2028",
]


def build_corpus():
    texts, tags = [], []

    def add(tag, items):
        for s in items:
            texts.append(s)
            tags.append(tag)

    add("empty", [""])
    add("prose", PROSE)
    add("code", CODE)
    add("cjk", CJK)
    add("rtl-indic-sea", RTL_INDIC_SEA)
    add("emoji", EMOJI)
    add("combining", COMBINING)
    # NFC / NFD / NFKC variants of the non-ASCII strings.
    variants = []
    for s in PROSE[24:] + CJK[:12] + COMBINING + RTL_INDIC_SEA[:6]:
        for form in ("NFC", "NFD", "NFKC"):
            v = unicodedata.normalize(form, s)
            if v != s:
                variants.append(v)
    add("normalization-variant", variants)
    add("whitespace", WHITESPACE)
    add("digits", DIGITS)
    add("digit-run", [("1234567890" * 6)[:n] for n in (2, 3, 4, 5, 6, 7, 9, 10, 11, 13, 16, 25, 33, 50, 60)])
    add("long-word", LONG_WORDS)
    add("special-in-text", SPECIAL_IN_TEXT)
    add("lookalike", LOOKALIKES)
    add("single-char", SINGLE_CHARS)

    # Each family's special tokens alone, with surrounding spaces/newlines, glued to words, doubled.
    gen = []
    for family in ("llama", "phi3", "gpt2", "qwen", "llama3"):
        for t in SPECIALS[family]:
            gen += [t, f" {t}", f"{t} ", f"a{t}b", f"a {t} b", f"\n{t}\n", f"{t}{t}", f"{t}Hello world"]
    add("special-variants", gen)

    # Deterministic mixes of fragments from every category (mixed script, mixed whitespace).
    rng = Rng(0x10035EED)
    pool = PROSE + CODE + CJK + RTL_INDIC_SEA + EMOJI + COMBINING + DIGITS + LOOKALIKES + SPECIAL_IN_TEXT
    seps = ["", " ", "  ", "\n", "\t", "\u00a0", "\u3000", "\r\n", "\n\n", " \n"]
    mixes = []
    for _ in range(110):
        parts = [rng.choice(pool) for _ in range(1 + rng.below(4))]
        s = ""
        for i, p in enumerate(parts):
            if i:
                s += rng.choice(seps)
            # Use a slice of the fragment (on code point boundaries, so it stays valid UTF-8).
            a = rng.below(len(p) + 1)
            b = a + 1 + rng.below(max(1, len(p) - a + 1))
            s += p[a:b] if rng.below(3) else p
        mixes.append(s)
    add("mixed", mixes)

    # Random code point soups from several blocks.
    ranges = [(0x20, 0x7E), (0xA0, 0x24F), (0x370, 0x3FF), (0x400, 0x4FF), (0x590, 0x5FF),
              (0x600, 0x6FF), (0x900, 0x97F), (0xE00, 0xE7F), (0x1100, 0x11FF), (0x3040, 0x30FF),
              (0x4E00, 0x9FFF), (0xAC00, 0xD7A3), (0x1F300, 0x1F64F), (0x0300, 0x036F), (0x2000, 0x206F)]
    soups = []
    for _ in range(60):
        n = 1 + rng.below(24)
        s = "".join(chr(lo + rng.below(hi - lo + 1)) for lo, hi in (rng.choice(ranges) for _ in range(n)))
        soups.append(s)
    add("codepoint-soup", soups)

    # Deduplicate (keep first), validate.
    seen, out_t, out_g = set(), [], []
    for s, g in zip(texts, tags):
        if s in seen:
            continue
        seen.add(s)
        s.encode("utf-8")  # raises on lone surrogates
        assert "\ufffd" not in s, repr(s)
        assert not any(0xD800 <= ord(c) <= 0xDFFF for c in s), repr(s)
        out_t.append(s)
        out_g.append(g)
    assert len(out_t) >= 500, len(out_t)
    return out_t, out_g


# ----------------------------------------------------------------------------------------------
# Expected outputs and War and Peace digests
# ----------------------------------------------------------------------------------------------


def fnv1a64(data: bytes) -> int:
    h = FNV_OFFSET
    for b in data:
        h ^= b
        h = (h * FNV_PRIME) & MASK64
    return h


def expected_cases(tok, texts):
    with_sp = tok.encode_batch(texts, add_special_tokens=True)
    no_sp = tok.encode_batch(texts, add_special_tokens=False)
    ids = [e.ids for e in with_sp]
    cases = []
    for text, e, n in zip(texts, with_sp, no_sp):
        # encode_batch and encode must agree (they do; checked so the fixture means encode()).
        assert tok.encode(text, add_special_tokens=True).ids == e.ids
        cases.append(
            {
                "ids": e.ids,
                "ids_no_special": n.ids,
                "decoded": tok.decode(e.ids, skip_special_tokens=False),
                "decoded_skip": tok.decode(e.ids, skip_special_tokens=True),
            }
        )
    assert len(ids) == len(cases)
    return cases


def war_and_peace(tok, lines):
    encs = tok.encode_batch(lines, add_special_tokens=False)
    all_ids = [e.ids for e in encs]
    decoded = tok.decode_batch(all_ids, skip_special_tokens=False)
    blocks, total = [], 0
    for start in range(0, len(lines), BLOCK_SIZE):
        ids_s = "".join(",".join(map(str, ids)) + ";" for ids in all_ids[start:start + BLOCK_SIZE])
        dec_s = "".join(d + "\n" for d in decoded[start:start + BLOCK_SIZE])
        count = sum(len(ids) for ids in all_ids[start:start + BLOCK_SIZE])
        total += count
        blocks.append(
            {
                "ids_fnv": format(fnv1a64(ids_s.encode("utf-8")), "016x"),
                "decoded_fnv": format(fnv1a64(dec_s.encode("utf-8")), "016x"),
                "tokens": count,
            }
        )
    return blocks, total


def read_war_and_peace(shared):
    raw = open(os.path.join(shared, "text", "war-and-peace.txt"), "rb").read()
    text = raw.decode("utf-8")
    crlf = "\r\n" in text
    lines = text.split("\n")
    if crlf:
        lines = [l[:-1] if l.endswith("\r") else l for l in lines]
    return lines, crlf, hashlib.sha256(raw).hexdigest()


def dump_compact(obj, path):
    data = json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n"
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(data)
    return len(data.encode("utf-8"))


def describe(tok_json):
    """Component summary (types and options, no vocab/merges) for the README/report."""
    j = json.loads(tok_json) if isinstance(tok_json, str) else tok_json
    model = {k: v for k, v in j["model"].items() if k not in ("vocab", "merges")}
    return {
        "normalizer": j.get("normalizer"),
        "pre_tokenizer": j.get("pre_tokenizer"),
        "model": model,
        "post_processor": j.get("post_processor"),
        "decoder": j.get("decoder"),
        "added_tokens": len(j.get("added_tokens", [])),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", required=True, help="the shared fixtures root (../shared/fixtures)")
    ap.add_argument("--out", required=True, help="output folder (tests/data/tokenizers)")
    ap.add_argument("--only", default="", help="comma-separated tokenizer names (default: all)")
    ap.add_argument("--summary", default="", help="also write a component summary JSON here (not committed)")
    args = ap.parse_args()

    shared = os.path.abspath(args.shared)
    out = args.out
    os.makedirs(out, exist_ok=True)
    names = [n for n in TOKENIZERS if not args.only or n in args.only.split(",")]

    texts, tags = build_corpus()
    size = dump_compact({"count": len(texts), "texts": texts, "tags": tags}, os.path.join(out, "corpus.json"))
    print(f"corpus.json: {len(texts)} strings, {size} bytes")

    lines, crlf, wp_sha = read_war_and_peace(shared)
    print(f"war-and-peace: {len(lines)} lines, crlf={crlf}")

    summary = {}
    for name in names:
        builder, mode, srcs = TOKENIZERS[name]
        built = builder(shared)
        tok, desc = built[0], built[1]
        tok_json = tok.to_str()
        d = os.path.join(out, name)
        os.makedirs(d, exist_ok=True)
        for stale in ("tokenizer.json", "tokenizer.overlay.json", "tokenizer.patch.json"):
            if os.path.exists(os.path.join(d, stale)):
                os.remove(os.path.join(d, stale))

        if mode == "full":
            path = os.path.join(d, "tokenizer.json")
            with open(path, "w", encoding="utf-8", newline="\n") as f:
                f.write(tok_json)
            # The committed file must load back to the same tokenizer.
            assert Tokenizer.from_file(path).to_str() == tok_json
        elif mode == "overlay":
            overlay = make_overlay(tok_json, srcs[0], srcs[1], shared)
            path = os.path.join(d, "tokenizer.overlay.json")
            with open(path, "w", encoding="utf-8", newline="\n") as f:
                json.dump(overlay, f, ensure_ascii=False, indent=1)
                f.write("\n")
            # Belt and braces: the assembled JSON loads into the same tokenizer.
            assembled = Tokenizer.from_str(json.dumps(assemble(overlay, shared), ensure_ascii=False))
            assert assembled.to_str() == tok_json

        elif mode == "patch":
            patch = built[2]
            path = os.path.join(d, "tokenizer.patch.json")
            with open(path, "w", encoding="utf-8", newline="\n") as f:
                json.dump(patch, f, ensure_ascii=True, indent=1)
                f.write("\n")

        cases = expected_cases(tok, texts)
        expected = {
            "tokenizers_version": tokenizers.__version__,
            "source": desc,
            "corpus": "corpus.json",
            "cases": cases,
        }
        size = dump_compact(expected, os.path.join(d, "expected.json"))
        blocks, total = war_and_peace(tok, lines)
        wp = {
            "tokenizers_version": tokenizers.__version__,
            "source": "text/war-and-peace.txt",
            "sha256": wp_sha,
            "crlf": crlf,
            "lines": len(lines),
            "block_size": BLOCK_SIZE,
            "total_tokens": total,
            "blocks": blocks,
        }
        dump_compact(wp, os.path.join(d, "war_and_peace.json"))
        summary[name] = describe(tok_json)
        summary[name]["source"] = desc
        summary[name]["war_and_peace_tokens"] = total
        print(f"{name}: expected.json {size} bytes, war-and-peace {total} tokens")

    # Size rule.
    for root, _, files in os.walk(out):
        for fn in files:
            p = os.path.join(root, fn)
            if os.path.getsize(p) > MAX_FILE_BYTES:
                raise SystemExit(f"{p} is {os.path.getsize(p)} bytes, over the {MAX_FILE_BYTES} limit")
    if args.summary:
        with open(args.summary, "w", encoding="utf-8") as f:
            json.dump(summary, f, ensure_ascii=False, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
