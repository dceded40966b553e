#!/usr/bin/env bash
# The main job on a fresh machine: install what is missing, build, and generate from a model.
#   tools/quickstart.sh [MODEL_DIR] [loom generate flags...]
# Without MODEL_DIR, a small random-weight model is made with loom-make-model (no download).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/tools/setup.sh"
"$root/tools/build.sh"
bin=${LOOM_BUILD_DIR:-$root/build}/tools
model=${1:-}
[ $# -gt 0 ] && shift
if [ -z "$model" ]; then
  model=$root/models/tiny
  if [ ! -f "$model/config.json" ]; then
    "$bin/loom-make-model" --preset tiny --output "$model" --overwrite
  fi
fi
extra=("$@")
[ ${#extra[@]} -eq 0 ] && extra=(--prompt-ids 1,2,3,4,5,6,7,8 --max-tokens 32 --temperature 0.8 --seed 7)
exec "$bin/loom" generate --model "$model" "${extra[@]}"
