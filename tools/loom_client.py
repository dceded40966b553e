#!/usr/bin/env python3
"""Example Python client of a running `loom serve`, from proto/loom/v1/loom.proto.

The Python stubs are generated at run time with grpcio-tools into a temporary directory, so
nothing generated is checked in and the client always matches the .proto beside it. Needs the
PyPI packages grpcio and grpcio-tools (`pip install grpcio-tools`, in a virtual environment).

  loom_client.py [--address HOST:PORT] generate (--prompt TEXT | --prompt-ids 1,2,3) [--max-tokens N]
  loom_client.py [--address HOST:PORT] status
  loom_client.py [--address HOST:PORT] rpc METHOD [JSON] [--timeout-ms N]

`generate` streams the text (or the token ids, for a model without a tokenizer) as it comes;
--json prints one JSON object per command instead, for scripts.
"""
import argparse
import importlib
import json
import os
import sys
import tempfile

PROTO_ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "proto")
DEFAULT_ADDRESS = "127.0.0.1:7430"


def load_stubs(out_dir):
    """Generates loom/v1/loom_pb2{,_grpc}.py into out_dir and imports them."""
    try:
        from grpc_tools import protoc
    except ImportError:
        sys.exit("loom_client.py: grpcio-tools is not installed (pip install grpcio-tools)")
    import importlib.resources
    well_known = str(importlib.resources.files("grpc_tools") / "_proto")
    rc = protoc.main(["grpc_tools.protoc", f"-I{PROTO_ROOT}", f"-I{well_known}",
                      f"--python_out={out_dir}", f"--grpc_python_out={out_dir}",
                      os.path.join(PROTO_ROOT, "loom", "v1", "loom.proto")])
    if rc != 0:
        sys.exit(f"loom_client.py: protoc failed on {PROTO_ROOT}/loom/v1/loom.proto")
    sys.path.insert(0, out_dir)
    return (importlib.import_module("loom.v1.loom_pb2"),
            importlib.import_module("loom.v1.loom_pb2_grpc"))


def generate(stub, pb2, args):
    request = pb2.GenerateRequest(max_tokens=args.max_tokens, temperature=args.temperature,
                                  seed=args.seed, ignore_eos=args.ignore_eos)
    if args.prompt_ids:
        request.prompt_ids.extend(int(t) for t in args.prompt_ids.split(","))
    elif args.prompt is not None:
        request.prompt = args.prompt
    else:
        sys.exit("loom_client.py generate: --prompt TEXT or --prompt-ids is required")
    ids, text, last = [], "", None
    for response in stub.Generate(request):
        ids.extend(response.token_ids)
        text += response.text
        if not args.json:
            print(response.text or "".join(f"{t} " for t in response.token_ids), end="", flush=True)
        if response.finish_reason:
            last = response
    if args.json:
        print(json.dumps({"output_ids": ids, "text": text, "finish_reason": last.finish_reason,
                          "prompt_tokens": last.usage.prompt_tokens,
                          "completion_tokens": last.usage.completion_tokens}))
    else:
        print(f"\n[finish: {last.finish_reason}, {last.usage.prompt_tokens} prompt + "
              f"{last.usage.completion_tokens} completion tokens]")


def status(stub, pb2, args):
    s = stub.GetStatus(pb2.GetStatusRequest())
    ranks = [{"rank": r.rank, "state": r.state, "pid": r.pid, "device": r.device,
              "error": r.error} for r in s.ranks]
    if args.json:
        print(json.dumps({"model": s.model, "tensor_parallel_size": s.tensor_parallel_size,
                          "num_kv_blocks": s.num_kv_blocks, "ranks": ranks}))
        return
    print(f"model {s.model}, tp={s.tensor_parallel_size}, {s.num_kv_blocks} KV blocks, "
          f"{s.running_requests} running, {s.waiting_requests} waiting")
    for r in ranks:
        print(f"rank {r['rank']}: {r['state']}, pid {r['pid']}, {r['device']} {r['error']}")


def rpc(stub, pb2, args):
    response = stub.CollectiveRpc(pb2.CollectiveRpcRequest(
        method=args.method, args_json=args.args_json or "", timeout_ms=args.timeout_ms))
    results = [{"rank": r.rank, "result": json.loads(r.result_json) if r.result_json else None,
                "error": r.error} for r in response.results]
    if args.json:
        print(json.dumps(results))
    else:
        for r in results:
            print(f"rank {r['rank']}: {r['error'] or json.dumps(r['result'])}")


def main():
    parser = argparse.ArgumentParser(description="Example client of a running `loom serve`.")
    parser.add_argument("--address", default=DEFAULT_ADDRESS)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    verbs = parser.add_subparsers(dest="verb", required=True)
    g = verbs.add_parser("generate")
    g.add_argument("--prompt")
    g.add_argument("--prompt-ids")
    g.add_argument("--max-tokens", type=int, default=32)
    g.add_argument("--temperature", type=float, default=0.0)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--ignore-eos", action="store_true")
    verbs.add_parser("status")
    r = verbs.add_parser("rpc")
    r.add_argument("method")
    r.add_argument("args_json", nargs="?")
    r.add_argument("--timeout-ms", type=int, default=0)
    args = parser.parse_args()

    import grpc
    with tempfile.TemporaryDirectory(prefix="loom-client-") as out_dir:
        pb2, pb2_grpc = load_stubs(out_dir)
        with grpc.insecure_channel(args.address) as channel:
            stub = pb2_grpc.LoomStub(channel)
            try:
                {"generate": generate, "status": status, "rpc": rpc}[args.verb](stub, pb2, args)
            except grpc.RpcError as e:
                sys.exit(f"loom_client.py {args.verb}: {e.code().name}: {e.details()}")


if __name__ == "__main__":
    main()
