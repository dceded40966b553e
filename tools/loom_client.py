#!/usr/bin/env python3
"""Example Python client of a running `loom serve`, from proto/loom/v1/loom.proto.

The Python stubs are generated at run time with grpcio-tools into a temporary directory, so
nothing generated is checked in and the client always matches the .proto beside it. Needs the
PyPI packages grpcio and grpcio-tools (`pip install grpcio-tools`, in a virtual environment).

  loom_client.py [--address HOST:PORT] generate (--prompt TEXT | --prompt-ids 1,2,3) [--max-tokens N]
  loom_client.py [--address HOST:PORT] status
  loom_client.py [--address HOST:PORT] rpc METHOD [JSON] [--timeout-ms N]
  loom_client.py [--address HOST:PORT] update-config PATCH_JSON
  loom_client.py [--address HOST:PORT] reload-weights [--mode auto|staged|in_place] [--policy P]
  loom_client.py [--address HOST:PORT] stage-weights [--model DIR] [--load-format F]
  loom_client.py [--address HOST:PORT] commit-weights [--policy recompute|abort]
  loom_client.py [--address HOST:PORT] abort-staged-weights
  loom_client.py [--address HOST:PORT] save-sharded-state PATH [--max-file-size BYTES]

`generate` streams the text (or the token ids, for a model without a tokenizer) as it comes;
--json prints one JSON object per command instead, for scripts. The weight verbs are typed
wrappers of CollectiveRpc (class LoomClient below, for use from Python programs).
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


class LoomClient:
    """Typed wrappers of the Loom API's collective weight methods (see
    controller/weight_coordinator.h). Each returns the per-rank results as
    [{"rank", "result", "error"}] and raises grpc.RpcError when the call fails."""

    def __init__(self, stub, pb2, timeout_ms=0):
        self.stub, self.pb2, self.timeout_ms = stub, pb2, timeout_ms

    def collective_rpc(self, method, args=None, ranks=()):
        response = self.stub.CollectiveRpc(self.pb2.CollectiveRpcRequest(
            method=method, args_json=json.dumps(args) if args is not None else "",
            timeout_ms=self.timeout_ms, ranks=list(ranks)))
        return [{"rank": r.rank, "result": json.loads(r.result_json) if r.result_json else None,
                 "error": r.error} for r in response.results]

    def update_config(self, patch):
        return self.collective_rpc("update_config", patch)

    def reload_weights(self, mode="auto", policy="recompute"):
        return self.collective_rpc("reload_weights", {"mode": mode, "policy": policy})

    def stage_weights(self, source=None):
        return self.collective_rpc("stage_weights", {"source": source} if source else {})

    def commit_weights(self, policy="recompute"):
        return self.collective_rpc("commit_weights", {"policy": policy})

    def abort_staged_weights(self):
        return self.collective_rpc("abort_staged_weights", {})

    def save_sharded_state(self, path, max_file_size=0):
        return self.collective_rpc("save_sharded_state",
                                   {"path": path, "max_file_size": max_file_size})

    def init_weight_update_group(self, group, world_size, rendezvous_id):
        """rendezvous_id must be fresh for every join (the store keeps old addresses)."""
        return self.collective_rpc("init_weight_update_group",
                                   {"group": group, "world_size": world_size,
                                    "rendezvous_id": rendezvous_id})

    def update_weights_from_distributed(self, group, tensors):
        """tensors: [{"name", "dtype", "shape"}], broadcast by the trainer in this order."""
        return self.collective_rpc("update_weights_from_distributed",
                                   {"group": group, "tensors": tensors})

    def destroy_weight_update_group(self, group):
        return self.collective_rpc("destroy_weight_update_group", {"group": group})


def print_results(results, args):
    if args.json:
        print(json.dumps(results))
    else:
        for r in results:
            print(f"rank {r['rank']}: {r['error'] or json.dumps(r['result'])}")


def weights(stub, pb2, args):
    client = LoomClient(stub, pb2, args.timeout_ms)
    if args.verb == "update-config":
        results = client.update_config(json.loads(args.patch))
    elif args.verb == "reload-weights":
        results = client.reload_weights(args.mode, args.policy)
    elif args.verb == "stage-weights":
        source = {k: v for k, v in (("model", args.model), ("load_format", args.load_format))
                  if v is not None}
        results = client.stage_weights(source or None)
    elif args.verb == "commit-weights":
        results = client.commit_weights(args.policy)
    elif args.verb == "abort-staged-weights":
        results = client.abort_staged_weights()
    else:
        results = client.save_sharded_state(args.path, args.max_file_size)
    print_results(results, args)


def generate(stub, pb2, args):
    request = pb2.GenerateRequest(max_tokens=args.max_tokens, temperature=args.temperature,
                                  seed=args.seed, ignore_eos=args.ignore_eos)
    if args.prompt_ids:
        request.prompt_ids.extend(int(t) for t in args.prompt_ids.split(","))
    elif args.prompt is not None:
        request.prompt = args.prompt
    else:
        sys.exit("loom_client.py generate: --prompt TEXT or --prompt-ids is required")
    ids, text, last, versions = [], "", None, []
    for response in stub.Generate(request):
        ids.extend(response.token_ids)
        versions.append(response.weight_version)
        text += response.text
        if not args.json:
            print(response.text or "".join(f"{t} " for t in response.token_ids), end="", flush=True)
        if response.finish_reason:
            last = response
    if args.json:
        print(json.dumps({"output_ids": ids, "text": text, "finish_reason": last.finish_reason,
                          "prompt_tokens": last.usage.prompt_tokens,
                          "completion_tokens": last.usage.completion_tokens,
                          "weight_versions": sorted(set(versions))}))
    else:
        print(f"\n[finish: {last.finish_reason}, {last.usage.prompt_tokens} prompt + "
              f"{last.usage.completion_tokens} completion tokens]")


def status(stub, pb2, args):
    s = stub.GetStatus(pb2.GetStatusRequest())
    ranks = [{"rank": r.rank, "state": r.state, "pid": r.pid, "device": r.device,
              "error": r.error, "weight_state": r.weight_state, "load_format": r.load_format,
              "weight_source": r.weight_source, "serving_version": r.serving_version,
              "staged_version": r.staged_version, "dummy": r.dummy} for r in s.ranks]
    finished = {"stop": s.finished.stop, "length": s.finished.length,
                "abort": s.finished.abort, "error": s.finished.error}
    if args.json:
        print(json.dumps({"model": s.model, "tensor_parallel_size": s.tensor_parallel_size,
                          "num_kv_blocks": s.num_kv_blocks,
                          "num_free_kv_blocks": s.num_free_kv_blocks,
                          "running_requests": s.running_requests,
                          "waiting_requests": s.waiting_requests, "steps": s.steps,
                          "finished": finished, "max_model_len": s.max_model_len,
                          "eos_token_ids": list(s.eos_token_ids), "tokenizer": s.tokenizer,
                          "default_max_tokens": s.default_max_tokens, "ranks": ranks,
                          "serving_weight_version": s.serving_weight_version,
                          "staged_weight_version": s.staged_weight_version}))
        return
    print(f"model {s.model}, tp={s.tensor_parallel_size}, max_model_len {s.max_model_len}, "
          f"tokenizer {s.tokenizer or 'none'}")
    print(f"{s.running_requests} running, {s.waiting_requests} waiting, {s.steps} steps; "
          f"finished {finished}; {s.num_free_kv_blocks} of {s.num_kv_blocks} KV blocks free")
    for r in ranks:
        print(f"rank {r['rank']}: {r['state']}, pid {r['pid']}, {r['device']} {r['error']}")


def rpc(stub, pb2, args):
    client = LoomClient(stub, pb2, args.timeout_ms)
    print_results(client.collective_rpc(
        args.method, json.loads(args.args_json) if args.args_json else None), args)


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
    u = verbs.add_parser("update-config")
    u.add_argument("patch")
    rw = verbs.add_parser("reload-weights")
    rw.add_argument("--mode", default="auto", choices=["auto", "staged", "in_place"])
    rw.add_argument("--policy", default="recompute", choices=["recompute", "abort"])
    sw = verbs.add_parser("stage-weights")
    sw.add_argument("--model")
    sw.add_argument("--load-format")
    cw = verbs.add_parser("commit-weights")
    cw.add_argument("--policy", default="recompute", choices=["recompute", "abort"])
    verbs.add_parser("abort-staged-weights")
    ss = verbs.add_parser("save-sharded-state")
    ss.add_argument("path")
    ss.add_argument("--max-file-size", type=int, default=0)
    for p in (u, rw, sw, cw, ss):
        p.add_argument("--timeout-ms", type=int, default=0)
    verbs.choices["abort-staged-weights"].add_argument("--timeout-ms", type=int, default=0)
    args = parser.parse_args()

    import grpc
    with tempfile.TemporaryDirectory(prefix="loom-client-") as out_dir:
        pb2, pb2_grpc = load_stubs(out_dir)
        with grpc.insecure_channel(args.address) as channel:
            stub = pb2_grpc.LoomStub(channel)
            try:
                verb = {"generate": generate, "status": status, "rpc": rpc}.get(args.verb, weights)
                verb(stub, pb2, args)
            except grpc.RpcError as e:
                sys.exit(f"loom_client.py {args.verb}: {e.code().name}: {e.details()}")


if __name__ == "__main__":
    main()
