#!/usr/bin/env python3
"""Runs llama.cpp and `loom bench` side by side on the same weights and prints one Markdown table.

The peer is llama.cpp as vendored in PyPI's `llama-cpp-python` sdist. Once, into a cache directory
outside the repository ($LOOM_PEER_CACHE, default ~/.cache/loom-peer), this script
  1. downloads that sdist with pip and extracts it,
  2. builds `llama-bench` and `llama-batched-bench` from its llama.cpp (cmake, Release,
     GGML_NATIVE=ON, -j2),
  3. makes a Python venv with what the vendored `convert_hf_to_gguf.py` imports (torch,
     transformers, numpy, ...; its own gguf-py is used), unless --python names one that has them.
Then, per model and dtype (cached by a fingerprint of the checkpoint), it converts the HF model
directory to GGUF with `--outtype DTYPE`, and runs both engines interleaved, --repeats times:

  batch 1 decode   llama-bench -p 0 -n NEW -d PROMPT      loom bench --batch 1
  batch 8/16       llama-batched-bench -npp PROMPT -ntg NEW -npl 8,16   loom bench --batch 8,16
  prefill PROMPT   llama-bench -p PROMPT -n 0             loom bench's batch-1 prefill

all at --threads threads, Loom with --weight-dtype DTYPE. The table has the medians, the ratio of
medians and each side's min-max; above it, the CPU, its ISA flags and the streaming-read bandwidth
`loom bench` measured in the same runs, and the share of the CPUs other processes took meanwhile.
Stopped (Ctrl-C, SIGTERM) after a whole repeat, it prints the table of the repeats done.

Without --model it writes a Qwen3-0.6B-shaped bf16 checkpoint with random weights
(`loom-make-model --preset qwen3-0.6b`) into a temporary directory. That checkpoint's tokenizer is a
byte-level stand-in which the converter does not know, so the GGUF is made from a view of the
directory (the same weight files, linked) with the real Qwen2/Qwen3 BPE tokenizer from the shared
fixtures (its vocabulary fits the preset's 151936 rows). Token ids do not matter to either
benchmark: both feed random or fixed ids.

Usage (from the repository root, after building Loom):
    python3 tools/bench_llama_cpp.py [--model DIR] [--dtype bf16|f16|f32] [--repeats 5]
        [--threads 2] [--prompt-len 128] [--new-tokens 64] [--batches 8,16]
"""
import argparse
import hashlib
import json
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LOOM_DTYPE = {"bf16": "bfloat16", "f16": "float16", "f32": "float32"}
# What convert_hf_to_gguf.py and its gguf-py import for a Qwen/Llama checkpoint.
CONVERT_PACKAGES = ["torch", "numpy", "safetensors", "sentencepiece", "pyyaml", "tqdm", "requests",
                    "transformers==4.57.6", "protobuf>=4.21.0,<5.0.0"]
LLAMA_TARGETS = ["llama-bench", "llama-batched-bench"]


def log(msg):
    print(f"[bench_llama_cpp] {msg}", file=sys.stderr, flush=True)


def run(cmd, **kw):
    """Runs cmd, returns its stdout; on failure shows its stderr and stops."""
    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    if p.returncode != 0:
        sys.stderr.write(p.stdout[-4000:] + p.stderr[-4000:])
        sys.exit(f"failed ({p.returncode}): {' '.join(str(c) for c in cmd)}")
    return p.stdout


def cache_dir(arg):
    d = Path(arg or os.environ.get("LOOM_PEER_CACHE") or Path.home() / ".cache" / "loom-peer")
    d = d.expanduser().resolve()
    if d == REPO or REPO in d.parents:
        sys.exit(f"the cache {d} must be outside the repository")
    d.mkdir(parents=True, exist_ok=True)
    return d


def llama_sources(cache):
    """The vendored llama.cpp of the newest llama-cpp-python sdist in the cache (downloads one)."""
    sdists = sorted((cache / "sdist").glob("llama_cpp_python-*.tar.gz"))
    if not sdists:
        log("downloading the llama-cpp-python sdist")
        run([sys.executable, "-m", "pip", "download", "--no-binary", ":all:", "--no-deps",
             "llama-cpp-python", "-d", cache / "sdist"])
        sdists = sorted((cache / "sdist").glob("llama_cpp_python-*.tar.gz"))
    sdist = sdists[-1]
    name = sdist.name[: -len(".tar.gz")]
    src = cache / "src" / name / "vendor" / "llama.cpp"
    if not (src / "CMakeLists.txt").exists():
        log(f"extracting {sdist.name}")
        with tarfile.open(sdist) as t:
            t.extractall(cache / "src", filter="data")
    return name, src


def llama_build(cache, name, src, jobs):
    build = cache / "build"
    stamp = build / "loom-peer-source"
    bins = {t: build / "bin" / t for t in LLAMA_TARGETS}
    if all(b.exists() for b in bins.values()) and stamp.exists() and stamp.read_text() == name:
        return bins
    if build.exists() and not (stamp.exists() and stamp.read_text() == name):
        shutil.rmtree(build)  # configured for other sources
    log(f"building {', '.join(LLAMA_TARGETS)} in {build} (-j{jobs}; takes a while)")
    t0 = time.time()
    generator = ["-G", "Ninja"] if shutil.which("ninja") else []
    run(["cmake", "-S", src, "-B", build, *generator, "-DCMAKE_BUILD_TYPE=Release", "-DGGML_NATIVE=ON",
         "-DBUILD_SHARED_LIBS=OFF", "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF",
         "-DLLAMA_BUILD_SERVER=OFF", "-DLLAMA_BUILD_APP=OFF", "-DLLAMA_CURL=OFF",
         "-DLLAMA_OPENSSL=OFF"])
    run(["cmake", "--build", build, f"-j{jobs}", "--target", *LLAMA_TARGETS])
    stamp.write_text(name)
    log(f"built in {time.time() - t0:.0f} s")
    return bins


def convert_python(cache, arg):
    """A Python that can run convert_hf_to_gguf.py: --python / $LOOM_PEER_PYTHON, or a cache venv."""
    py = arg or os.environ.get("LOOM_PEER_PYTHON")
    if not py:
        venv = cache / "venv"
        py = venv / "bin" / "python"
        if not (venv / ".complete").exists():
            log(f"making {venv} for convert_hf_to_gguf.py (torch is a large download)")
            run([sys.executable, "-m", "venv", venv])
            run([py, "-m", "pip", "install", "-q", *CONVERT_PACKAGES])
            (venv / ".complete").touch()
    run([py, "-c", "import torch, numpy, safetensors, transformers, yaml, tqdm"])
    return Path(py)


def fingerprint(model):
    """Cheap identity of a checkpoint: config, file names and sizes, 1 MiB of each weight file's ends."""
    h = hashlib.sha256()
    for f in sorted(model.iterdir()):
        if not f.is_file():
            continue
        h.update(f"{f.name}:{f.stat().st_size}\n".encode())
        with open(f, "rb") as fp:
            if f.suffix == ".safetensors":
                h.update(fp.read(1 << 20))
                fp.seek(max(0, f.stat().st_size - (1 << 20)))
            h.update(fp.read(1 << 20))
    return h.hexdigest()[:16]


def stand_in_tokenizer(model):
    """True for loom-make-model's byte-level tokenizer, which the converter cannot name."""
    tok = model / "tokenizer.json"
    if (model / "vocab.json").exists() or not tok.exists():
        return False
    try:
        return len(json.loads(tok.read_text())["model"]["vocab"]) < 1000
    except (KeyError, ValueError, TypeError):
        return False


def conversion_view(model, work, fixtures):
    """The model's files, linked, with the Qwen BPE tokenizer instead of a byte-level stand-in."""
    qwen = fixtures / "tokenizers" / "qwen2"
    vocab = json.loads((model / "config.json").read_text()).get("vocab_size", 0)
    if not (qwen / "vocab.json").exists() or vocab < 151669:
        sys.exit(f"{model} has a stand-in tokenizer and no real one fits (vocab {vocab}; looked in "
                 f"{qwen}); give a model with its own tokenizer")
    view = work / "convert-view" / model.name  # the GGUF's general.name
    if view.exists():  # made by an earlier conversion of this model (another dtype)
        return view
    view.mkdir(parents=True)
    for f in model.iterdir():
        if f.name not in ("tokenizer.json", "tokenizer_config.json"):
            (view / f.name).symlink_to(f.resolve())
    shutil.copy(qwen / "vocab.json", view)
    shutil.copy(qwen / "merges.txt", view)
    shutil.copy(qwen / "tokenizer_config.qwen3.json", view / "tokenizer_config.json")
    return view


def gguf(cache, src, py, model, dtype, work, fixtures):
    out = cache / "gguf" / f"{model.name}-{fingerprint(model)}-{dtype}.gguf"
    if out.exists():
        return out
    out.parent.mkdir(exist_ok=True)
    source = conversion_view(model, work, fixtures) if stand_in_tokenizer(model) else model
    log(f"converting {model} to {out.name}")
    t0 = time.time()
    tmp = out.with_suffix(".partial")
    run([py, src / "convert_hf_to_gguf.py", source, "--outtype", dtype, "--outfile", tmp])
    tmp.rename(out)
    log(f"converted in {time.time() - t0:.0f} s")
    return out


def llama_bench(binary, model, threads, prompt, new, depth):
    rows = json.loads(run([binary, "-m", model, "-t", threads, "-p", prompt, "-n", new,
                           "-d", depth, "-r", 1, "-o", "json"]))
    return rows[0]["avg_ts"]


def llama_batched(binary, model, threads, prompt, new, batches):
    ctx = max(batches) * (prompt + new) + 256
    out = run([binary, "-m", model, "-t", threads, "-tb", threads, "-c", ctx, "-b", 2048,
               "-ub", 512, "-npp", prompt, "-ntg", new, "-npl", ",".join(map(str, batches)),
               "--output-format", "jsonl"])
    speeds = {}
    for line in out.splitlines():
        if line.startswith("{"):
            r = json.loads(line)
            speeds[r["pl"]] = r["speed_tg"]
    return speeds


def loom_bench(loom, model, dtype, threads, prompt, new, batches):
    out = run([loom, "bench", "--model", model, "--weight-dtype", LOOM_DTYPE[dtype],
               "--threads", threads, "--prompt-len", prompt, "--new-tokens", new,
               "--batch", ",".join(map(str, [1] + batches))])
    read = float(re.search(r"streaming read ([\d.]+) GB/s", out).group(1))
    isa = re.search(r"CPU kernels (\S+)", out).group(1)
    res = {"read": read, "isa": isa, "decode": {}}
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 11 and cells[0].isdigit():
            b = int(cells[0])
            res["decode"][b] = float(cells[6])
            if b == 1:
                res["prefill"] = float(cells[3])
                res["vs_read"] = float(cells[10])
    return res


def cpu():
    info = run(["lscpu"])
    name = re.search(r"Model name:\s*(.+)", info).group(1).strip()
    flags = set(re.search(r"Flags:\s*(.+)", info).group(1).split())
    isa = ", ".join(f"{f} {'yes' if f in flags else 'no'}"
                    for f in ("avx2", "fma", "f16c", "avx512f", "avx512_bf16", "amx_bf16"))
    return name, isa


def busy_seconds():
    """CPU seconds all processes have used since boot (/proc/stat), and those of our children."""
    with open("/proc/stat") as f:
        jiffies = [int(x) for x in f.readline().split()[1:]]
    busy = sum(jiffies) - jiffies[3] - jiffies[4]  # less idle and iowait
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return busy / os.sysconf("SC_CLK_TCK"), children.ru_utime + children.ru_stime


def measured(fn, max_foreign, retries):
    """fn()'s result and the share of the CPUs other processes took meanwhile; reruns fn (after a
    pause) while that share is above max_foreign, at most retries times, and keeps the last."""
    for attempt in range(retries + 1):
        b0, c0, t0 = *busy_seconds(), time.time()
        result = fn()
        b1, c1, t1 = *busy_seconds(), time.time()
        foreign = max(0.0, (b1 - b0) - (c1 - c0)) / ((t1 - t0) * os.cpu_count())
        if foreign <= max_foreign or attempt == retries:
            return result, foreign
        log(f"other processes took {foreign:.0%} of the CPUs; again in 30 s")
        time.sleep(30)


def span(xs):
    return f"{min(xs):.1f}–{max(xs):.1f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, help="HF model directory (default: a made qwen3-0.6b)")
    ap.add_argument("--dtype", choices=sorted(LOOM_DTYPE), default="bf16")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prompt-len", type=int, default=128)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--batches", default="8,16", help="batched decode sizes besides 1")
    ap.add_argument("--cache", help="cache directory (default $LOOM_PEER_CACHE or ~/.cache/loom-peer)")
    ap.add_argument("--python", help="a Python with torch and transformers for the converter")
    ap.add_argument("--loom-build", type=Path, default=REPO / "build", help="Loom's build directory")
    ap.add_argument("--fixtures", type=Path, default=REPO.parent / "shared" / "fixtures")
    ap.add_argument("--jobs", type=int, default=2, help="parallel jobs of the llama.cpp build")
    ap.add_argument("--max-foreign", type=float, default=0.15,
                    help="rerun a side's measurement when other processes took more of the CPUs")
    ap.add_argument("--retries", type=int, default=0, help="reruns per measurement at most")
    ap.add_argument("--json", type=Path, help="also write every repeat's numbers here")
    a = ap.parse_args()
    # A SIGTERM unwinds like an error: the running benchmark is killed, the temporary model removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    batches = [int(b) for b in a.batches.split(",") if b]

    loom = a.loom_build / "tools" / "loom"
    make_model = a.loom_build / "tools" / "loom-make-model"
    if not loom.exists():
        sys.exit(f"{loom} is missing: build Loom first")
    cache = cache_dir(a.cache)
    name, src = llama_sources(cache)
    bins = llama_build(cache, name, src, a.jobs)
    py = convert_python(cache, a.python)

    with tempfile.TemporaryDirectory(prefix="loom-peer-") as tmp:
        work = Path(tmp)
        model = a.model.resolve() if a.model else None
        if model is None:
            model = work / "qwen3-0.6b-bf16"
            log(f"making {model}")
            run([make_model, "--preset", "qwen3-0.6b", "--dtype", "bfloat16", "--output", model])
        weights = gguf(cache, src, py, model, a.dtype, work, a.fixtures)

        rows = {k: ([], []) for k in ["1", *map(str, batches), "prefill"]}
        reads, vs_read, loom_isa, foreign = [], [], "", ([], [])

        def peer():
            s = llama_batched(bins["llama-batched-bench"], weights, a.threads, a.prompt_len,
                              a.new_tokens, batches)
            s[1] = llama_bench(bins["llama-bench"], weights, a.threads, 0, a.new_tokens,
                               a.prompt_len)
            s["prefill"] = llama_bench(bins["llama-bench"], weights, a.threads, a.prompt_len, 0, 0)
            return s

        def run_repeat(rep):
            nonlocal loom_isa
            # Alternate who goes first, so a drift in the machine's load hits both sides alike.
            order = ["llama", "loom"] if rep % 2 == 0 else ["loom", "llama"]
            for side in order:
                log(f"repeat {rep + 1}/{a.repeats}: {side}")
                if side == "llama":
                    s, f = measured(peer, a.max_foreign, a.retries)
                    for key in rows:
                        rows[key][0].append(s[int(key) if key.isdigit() else key])
                    foreign[0].append(f)
                else:
                    r, f = measured(lambda: loom_bench(loom, model, a.dtype, a.threads,
                                                       a.prompt_len, a.new_tokens, batches),
                                    a.max_foreign, a.retries)
                    for b in [1, *batches]:
                        rows[str(b)][1].append(r["decode"][b])
                    rows["prefill"][1].append(r["prefill"])
                    reads.append(r["read"])
                    vs_read.append(r["vs_read"])
                    loom_isa = r["isa"]
                    foreign[1].append(f)

        done = 0
        try:
            for rep in range(a.repeats):
                run_repeat(rep)
                done += 1
        except (SystemExit, KeyboardInterrupt):
            if done == 0:
                raise
            log(f"stopped: the table has the {done} whole repeats")
            for r in (*rows.values(), foreign):
                del r[0][done:], r[1][done:]
            del reads[done:], vs_read[done:]

    cpu_name, isa = cpu()
    print(f"CPU: {cpu_name}, {os.cpu_count()} logical CPUs; {isa}; Loom's kernels: {loom_isa}")
    print(f"weights: {a.dtype} ({model.name if a.model else 'loom-make-model --preset qwen3-0.6b'}); "
          f"{a.threads} threads; llama.cpp from {name}; {len(reads)} interleaved repeats, medians "
          f"(min–max)")
    print(f"streaming read bandwidth (loom bench, {a.threads} threads, same runs): "
          f"{statistics.median(reads):.2f} GB/s ({span(reads)}); Loom batch-1 decode reads its "
          f"weights at {statistics.median(vs_read):.2f} of it")
    print(f"other processes' share of the CPUs during the runs: llama.cpp "
          f"{statistics.median(foreign[0]):.0%} (max {max(foreign[0]):.0%}), Loom "
          f"{statistics.median(foreign[1]):.0%} (max {max(foreign[1]):.0%})")
    print()
    print("| batch | llama.cpp tok/s | Loom tok/s | Loom ÷ llama.cpp |")
    print("|---|---|---|---|")
    for key, (theirs, ours) in rows.items():
        label = f"prefill {a.prompt_len}" if key == "prefill" else key
        mp, mo = statistics.median(theirs), statistics.median(ours)
        print(f"| {label} | {mp:.1f} ({span(theirs)}) | {mo:.1f} ({span(ours)}) | {mo / mp:.2f} |")
    if a.json:
        a.json.write_text(json.dumps({"cpu": cpu_name, "dtype": a.dtype, "threads": a.threads,
                                      "read_gbs": reads, "rows": rows,
                                      "foreign_share": foreign}, indent=1))


if __name__ == "__main__":
    main()
