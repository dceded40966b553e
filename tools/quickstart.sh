#!/usr/bin/env bash
# The main job on a fresh machine: install what is missing, build, and show the weight lifecycle.
#   tools/quickstart.sh                                   the lifecycle on models/war-and-peace
#   tools/quickstart.sh MODEL_DIR [loom generate flags]   generate from MODEL_DIR in this process
# Without arguments it runs, step by step, what a user types by hand: a TP=2 cluster started on
# dummy weights (noise), update_config + reload_weights to the trained v1 (English), v2 staged
# while a request streams and committed, the weight version behind every answer, and a stop.
# LOOM_QUICKSTART_NO_BUILD=1 skips set-up and build (the test runs it against a built tree);
# LOOM_BUILD_DIR says where the build is (default build/).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
if [ "${LOOM_QUICKSTART_NO_BUILD:-0}" != 1 ]; then
  "$root/tools/setup.sh"
  "$root/tools/build.sh"
fi
bin=${LOOM_BUILD_DIR:-$root/build}/tools
for tool in "$bin/loom" "$bin/../worker/loom-worker"; do
  [ -x "$tool" ] || { echo "quickstart: $tool is not built (run tools/build.sh)" >&2; exit 1; }
done

if [ $# -gt 0 ]; then
  model=$1
  shift
  extra=("$@")
  [ ${#extra[@]} -eq 0 ] &&
    extra=(--prompt-ids 1,2,3,4,5,6,7,8 --max-tokens 32 --temperature 0.8 --seed 7)
  exec "$bin/loom" generate --model "$model" "${extra[@]}"
fi

cd "$root"
models=models/war-and-peace
for v in v1 v2; do
  [ -f "$models/$v/model.safetensors" ] || { echo "quickstart: $models/$v is missing" >&2; exit 1; }
done
# Sampled, not greedy: greedy decoding of a model this small soon loops on one phrase.
prompt="Prince Andrew"
sampling=(--temperature 0.5 --top-k 40 --seed 3)
work=$(mktemp -d "${TMPDIR:-/tmp}/loom-quickstart.XXXXXX")
server_pid="" stream_pid=""

# Stops what this script started, however it ends (Ctrl-C included); the work folder goes too.
cleanup() {
  trap - EXIT INT TERM
  set +e
  [ -n "$stream_pid" ] && kill "$stream_pid" 2>/dev/null
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill "$server_pid" 2>/dev/null  # loom serve stops its workers on SIGTERM
    for _ in $(seq 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$server_pid" 2>/dev/null
  fi
  wait 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

bold="" plain=""
if [ -t 1 ]; then bold=$(printf '\033[1m') plain=$(printf '\033[0m'); fi
step() { printf '\n%s== %s ==%s\n' "$bold" "$*" "$plain"; }
# Shows a command as a user types it ("loom" for build/tools/loom).
show() { printf '$ loom %s\n' "$*"; }
# Keeps the named fields of each rank's JSON answer: `rank 0: {"a":1, …}` (the rest is elided).
pick() {
  local keys
  keys=$(IFS='|'; echo "$*")
  while IFS= read -r line; do
    if [[ $line =~ ^(rank [0-9]+: )\{ ]]; then
      fields=$(grep -oE "\"($keys)\":(\"[^\"]*\"|[^,{}]*)" <<<"$line" | paste -sd '|' - |
        sed -E 's/\|/, /g; s/([0-9]\.[0-9]{4})[0-9]+/\1/g')
      echo "${BASH_REMATCH[1]}{$fields, …}"
    else
      echo "$line"
    fi
  done
}
# Cuts lines at the terminal's width (COLUMNS, else 110), marking the cut.
clip() { awk -v w="${COLUMNS:-110}" '{ print (length($0) > w ? substr($0, 1, w - 1) "…" : $0) }'; }
loom() { "$bin/loom" "$@"; }  # foreground only: in the background $! must be loom's own pid

start_ms=$(($(date +%s%N) / 1000000))
printf '%sLoom quickstart%s: the weight lifecycle on %s,\n' "$bold" "$plain" "$models"
printf 'a 2M-parameter Qwen3 trained on War and Peace (v1: 500 steps, v2: 3,000).\n'
printf '"loom" below is %s.\n' "${bin#"$root"/}/loom"

step "1. Start a cluster: 2 tensor-parallel worker processes on dummy (random) weights"
show serve --model $models/v1 --tp 2 --load-format dummy --port 0 '&'
: >"$work/serve.log"
"$bin/loom" serve --model $models/v1 --tp 2 --load-format dummy --port 0 --http-port 0 >>"$work/serve.log" 2>&1 &
server_pid=$!
for _ in $(seq 600); do
  grep -q '^loom serve: ready' "$work/serve.log" && break
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.1
done
if ! grep -q '^loom serve: ready' "$work/serve.log"; then
  echo "quickstart: loom serve did not become ready:" >&2
  cat "$work/serve.log" >&2
  exit 1
fi
grep '^loom serve:' "$work/serve.log" | clip
address=$(sed -nE 's/^loom serve: listening on (.*)$/\1/p' "$work/serve.log")
at=(--address "$address")

step "2. Generate from a text prompt: dummy weights, so noise"
show generate "${at[@]}" --prompt "\"$prompt\"" --max-tokens 40 "${sampling[@]}"
loom generate "${at[@]}" --prompt "$prompt" --max-tokens 40 "${sampling[@]}"

step "3. Load the trained v1 in place of the dummy weights, without a restart"
show rpc "${at[@]}" update_config "'{\"load_config\": {\"load_format\": \"auto\"}}'"
loom rpc "${at[@]}" update_config '{"load_config": {"load_format": "auto"}}' |
  pick applied load_format model
show rpc "${at[@]}" reload_weights
loom rpc "${at[@]}" reload_weights 2>/dev/null | pick bytes_read version mode seconds

step "4. Generate again: v1 writes English"
show generate "${at[@]}" --prompt "\"$prompt\"" --max-tokens 40 "${sampling[@]}"
loom generate "${at[@]}" --prompt "$prompt" --max-tokens 40 "${sampling[@]}"

step "5. Stage v2 while a request streams, then commit it: the request goes on under v2"
show generate "${at[@]}" --prompt "\"$prompt\"" --max-tokens 1000 --ignore-eos "${sampling[@]}" '&'
"$bin/loom" generate "${at[@]}" --prompt "$prompt" --max-tokens 1000 --ignore-eos "${sampling[@]}" \
  >"$work/stream.txt" 2>&1 &
stream_pid=$!
for _ in $(seq 300); do [ -s "$work/stream.txt" ] && break; sleep 0.01; done  # tokens flow
show rpc "${at[@]}" stage_weights "'{\"source\": {\"model\": \"$models/v2\"}}'"
loom rpc "${at[@]}" stage_weights "{\"source\": {\"model\": \"$models/v2\"}}" 2>/dev/null |
  pick bytes_read seconds staged_version
show rpc "${at[@]}" commit_weights
loom rpc "${at[@]}" commit_weights
wait "$stream_pid"
stream_pid=""
echo "The streamed answer (the request ran on through the commit):"
cat "$work/stream.txt"

step "6. Generate on v2"
show generate "${at[@]}" --prompt "\"$prompt\"" --max-tokens 40 "${sampling[@]}"
loom generate "${at[@]}" --prompt "$prompt" --max-tokens 40 "${sampling[@]}"

step "7. The cluster's status, then stop it"
show status "${at[@]}"
loom status "${at[@]}" | clip
show stop "${at[@]}"
loom stop "${at[@]}"
for _ in $(seq 100); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
wait "$server_pid" 2>/dev/null || true
server_pid=""
ms=$(($(date +%s%N) / 1000000 - start_ms))
printf '\nDone in %d.%d s. More: README.md ("Using it") and docs/weights.md.\n' $((ms / 1000)) \
  $((ms % 1000 / 100))
