#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz) with clang, ASan and UBSan into build-fuzz/ and runs
# each for a bounded time, starting from its committed seed corpus (tests/fuzz/corpus/TARGET).
#
#   tools/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#
# SECONDS_PER_TARGET defaults to $LOOM_FUZZ_SECONDS, else 20; TARGETs default to all of them.
# Prints per target the executions, executions per second, seconds run and crashes, and exits
# non-zero when any target crashed (the input is kept in build-fuzz/artifacts/, with the
# fuzzer's log beside it). New inputs the fuzzers find go to build-fuzz/corpus/, never into the
# tree. docs/fuzzing.md says more.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${LOOM_FUZZ_BUILD_DIR:-$root/build-fuzz}
seconds=${1:-${LOOM_FUZZ_SECONDS:-20}}
[ $# -gt 0 ] && shift
all=(safetensors model_config engine_config_patch tokenizer step_request)
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=("${all[@]}")

cxx=${LOOM_FUZZ_CXX:-$(command -v clang++-14 || command -v clang++ || true)}
cc=${LOOM_FUZZ_CC:-$(command -v clang-14 || command -v clang || true)}
if [ -z "$cxx" ] || [ -z "$cc" ]; then
  echo "fuzz.sh: clang is missing (tools/setup.sh installs clang-14 and libclang-rt-14-dev)" >&2
  exit 1
fi

generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
if [ ! -f "$build/CMakeCache.txt" ]; then
  cmake -S "$root" -B "$build" "${generator[@]}" -DCMAKE_C_COMPILER="$cc" \
    -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -gline-tables-only" \
    -DLOOM_FUZZ=ON -DLOOM_BUILD_TESTS=OFF -DLOOM_CPU_ONLY=ON >/dev/null
fi
build_start=$(date +%s)
cmake --build "$build" -j "$(nproc)" --target $(printf 'fuzz_%s ' "${targets[@]}")
echo "fuzz.sh: built in $(($(date +%s) - build_start)) s"

mkdir -p "$build/artifacts" "$build/logs"
failed=0
rows=()
for t in "${targets[@]}"; do
  seeds=$root/tests/fuzz/corpus/$t
  corpus=$build/corpus/$t
  log=$build/logs/$t.log
  mkdir -p "$corpus" "$build/dicts"
  # A dictionary of the format's tokens: the JSON targets share json.dict.
  dict=$build/dicts/$t.dict
  : >"$dict"
  [ "$t" != step_request ] && cat "$root/tests/fuzz/json.dict" >>"$dict"
  [ -f "$root/tests/fuzz/$t.dict" ] && cat "$root/tests/fuzz/$t.dict" >>"$dict"
  rm -f "$build/artifacts/$t-"*
  start=$(date +%s.%N)
  rc=0
  # The first directory gathers what the run finds; the seeds are read only.
  "$build/tests/fuzz/fuzz_$t" "$corpus" "$seeds" -max_total_time="$seconds" -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 -dict="$dict" -artifact_prefix="$build/artifacts/$t-" \
    >"$log" 2>&1 || rc=$?
  elapsed=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  execs=$(awk '/stat::number_of_executed_units/ { print $NF }' "$log" | tail -1)
  rate=$(awk '/stat::average_exec_per_sec/ { print $NF }' "$log" | tail -1)
  crashes=$(find "$build/artifacts" -name "$t-*" -type f | wc -l)
  if [ "$rc" -ne 0 ] && [ "$crashes" -eq 0 ]; then crashes=1; fi
  rows+=("$(printf '%-20s %10s %8s %8s %8s' "$t" "${execs:-?}" "${rate:-?}" "$elapsed" "$crashes")")
  if [ "$crashes" -ne 0 ]; then
    failed=1
    echo "fuzz.sh: $t crashed (exit $rc); log $log, inputs:" >&2
    find "$build/artifacts" -name "$t-*" -type f >&2
    grep -m 20 -E "ERROR|SUMMARY|runtime error|terminate called|what\(\)|#[0-9]+ 0x" "$log" >&2 || tail -20 "$log" >&2
  fi
done
echo "== fuzzing, $seconds s per target =="
printf '%-20s %10s %8s %8s %8s\n' target execs exec/s seconds crashes
printf '%s\n' "${rows[@]}"
exit "$failed"
