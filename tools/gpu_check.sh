#!/usr/bin/env bash
# The one command for a GPU machine. Runs, in order, each step timed and reported in a final
# table:
#   a. the CUDA kernel tests (each kernel against the CPU reference);
#   b. HfReferenceTest on the GPU (LOOM_TEST_DEVICE=cuda): greedy tokens and logits of every
#      committed model (tests/data/models, models/war-and-peace) against HF transformers;
#   c. end to end: `loom serve --device cuda --tp 1` on committed models, a client generating 16
#      greedy tokens through it, which must equal `loom generate --device cpu`'s; then the server
#      stops and no process of it may be left;
#   d. the kernel benchmark (a Markdown table against the measured copy bandwidth and GEMM rate),
#      and `loom bench --device cuda` on a Qwen3-0.6B-shaped model at batch 1, 8 and 32: decode
#      tok/s next to weight bytes per second and the device's copy bandwidth.
# --quick: b on the fixture models and the trained model only, the kernel benchmark's short run,
# no loom bench; sized for about a minute on an H200, the full run for at most 4 (docs/gpu.md).
#
# Where the binaries come from:
#  1. build/gpu-bundle/ (or build/gpu-bundle.tar.gz), made by tools/gpu_bundle.sh on a build
#     machine: run with LD_LIBRARY_PATH set to the bundle's lib/, plus the directories of this
#     machine's cuBLAS and NCCL (its CUDA toolkit, or the nvidia-cublas and nvidia-nccl wheels
#     that PyTorch brings) where the bundle does not carry them. Every step runs.
#  2. Otherwise a build from source of only the kernel tests and benchmark (common/, kernels/,
#     tests/cuda/) with CMake and nvcc: steps a and d's kernel benchmark only (the rest needs
#     gRPC, Protobuf and Gloo). That needs Abseil, GoogleTest, nlohmann-json and OpenBLAS
#     development files; a GPU machine with just the CUDA toolkit and PyTorch has none of them,
#     and then the script says so and stops: bring the bundle instead.
#
# Usage: tools/gpu_check.sh [--quick] [--tests-only]
#   --quick       as above
#   --tests-only  steps a to c, no benchmarks
# Environment: LOOM_GPU_BUNDLE (default build/gpu-bundle), LOOM_GPU_CHECK_LOG_DIR (copies of the
# logs, the benchmark tables and the summary go there too), LOOM_GPU_CHECK_HF_FILTER (step b's
# --gtest_filter instead of the default), LOOM_GPU_CHECK_DEVICE (default cuda; cuda:K for another
# GPU, or cpu to rehearse steps b, c and d's loom bench on a machine without one).
# Exit status: 0 when every step ran and passed (no test skipped), 1 otherwise.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bundle=${LOOM_GPU_BUNDLE:-$root/build/gpu-bundle}
logs=${LOOM_GPU_CHECK_LOG_DIR:-}
device=${LOOM_GPU_CHECK_DEVICE:-cuda}
quick=0
run_bench=1
for arg in "$@"; do
  case $arg in
    --quick) quick=1 ;;
    --tests-only) run_bench=0 ;;
    *) echo "usage: $0 [--quick] [--tests-only]" >&2; exit 1 ;;
  esac
done
[ -d /usr/local/cuda/bin ] && export PATH="$PATH:/usr/local/cuda/bin"
work=$(mktemp -d /tmp/loom-gpu-check.XXXXXX)

say() { echo "gpu_check: $*"; }

# Step results, in order, for the summary table.
step_names=() step_results=() step_seconds=() step_notes=()
step_start=0
now() { date +%s.%N; }
begin_step() {
  say "---- $1"
  step_start=$(now)
}
end_step() {  # NAME RESULT NOTE
  step_names+=("$1")
  step_results+=("$2")
  step_seconds+=("$(awk -v a="$step_start" -v b="$(now)" 'BEGIN {printf "%.1f", b - a}')")
  step_notes+=("$3")
  say "$1: $2${3:+ ($3)}"
}
skip_step() {  # NAME WHY
  step_names+=("$1")
  step_results+=("SKIP")
  step_seconds+=("-")
  step_notes+=("$2")
  say "$1: SKIP ($2)"
}

# What the script started and must not leave behind: the server of step c and its workers, and
# the source-tree link of step b.
server_pid=""
worker_pids=()
made_link=""
# Whether process $1 runs (a zombie, exited but not yet reaped, does not).
alive() { [ -e "/proc/$1" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null; }
# shellcheck disable=SC2317  # run by the EXIT trap
cleanup() {
  local p
  for p in $server_pid "${worker_pids[@]}"; do
    alive "$p" && kill -TERM "$p" 2>/dev/null
  done
  [ -n "$made_link" ] && [ -L "$made_link" ] && rm -f "$made_link"
}
trap cleanup EXIT

if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader |
    sed 's/^/gpu_check: GPU: /'
else
  say "nvidia-smi not found; going on (the tests will say whether CUDA sees a device)"
fi

# The directory holding this machine's copy of a CUDA library (libcublas.so.13, libnccl.so.2),
# searched in the CUDA toolkit, the nvidia-* wheels of the Python that has PyTorch, and ldconfig.
find_lib() {
  local want=$1 dir site
  for dir in /usr/local/cuda/lib64 /usr/local/cuda/lib /usr/local/cuda/targets/x86_64-linux/lib; do
    [ -e "$dir/$want" ] && { echo "$dir"; return 0; }
  done
  if command -v python3 >/dev/null; then
    for site in $(python3 -c 'import site; print(" ".join(site.getsitepackages()))' 2>/dev/null); do
      dir=$(find "$site/nvidia" -maxdepth 4 -name "$want" -printf '%h\n' 2>/dev/null | head -1)
      [ -n "$dir" ] && { echo "$dir"; return 0; }
    done
  fi
  dir=$(ldconfig -p 2>/dev/null | awk -v w="$want" '$1 == w {print $NF; exit}')
  [ -n "$dir" ] && { dirname "$dir"; return 0; }
  return 1
}

# Adds this machine's copy of a library the bundle left out to libpath, or stops.
# KEY is its MANIFEST line ("cublas", "nccl"), PREFIX its soname without the version
# ("libcublas.so."), DEFAULT the soname when the MANIFEST names none.
add_machine_lib() {
  local manifest=$1 key=$2 prefix=$3 default=$4 want dir
  ls "$libpath/$prefix"* >/dev/null 2>&1 && return 0
  [ "$(sed -n "s/^$key: //p" "$manifest" 2>/dev/null)" = none ] && return 0
  want=$(sed -n "s/^$key: \\(${prefix//./\\.}[0-9.]*\\).*/\\1/p" "$manifest" 2>/dev/null)
  want=${want:-$default}
  if dir=$(find_lib "$want"); then
    say "$key: $dir/$want"
    libpath="$libpath:$dir"
  else
    say "$want not found on this machine (CUDA toolkit, nvidia-* wheels, ldconfig);"
    say "rebuild the bundle with tools/gpu_bundle.sh --with-cublas, or install it"
    exit 1
  fi
}

use_bundle() {
  bin=$1/bin
  libpath=$1/lib
  have_bundle=1
  add_machine_lib "$1/MANIFEST" cublas libcublas.so. libcublas.so.13
  add_machine_lib "$1/MANIFEST" nccl libnccl.so. libnccl.so.2
  export LD_LIBRARY_PATH="$libpath${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  local missing
  missing=$(ldd "$bin"/* | grep 'not found' | sort -u)
  if [ -n "$missing" ]; then
    say "the bundle's binaries miss libraries here:"
    echo "$missing"
    exit 1
  fi
  sed -n '/^binaries:/q; s/^/gpu_check: bundle: /p' "$1/MANIFEST"
}

build_from_source() {
  local project=$work/project build=$work/build
  say "no bundle at $bundle; trying a build from source in $build"
  for tool in cmake nvcc; do
    command -v $tool >/dev/null || { say "cannot build from source: $tool not found"; exit 1; }
  done
  mkdir -p "$project"
  # Only the layers the check needs; the full project also needs gRPC, Protobuf and Gloo.
  cat >"$project/CMakeLists.txt" <<EOF
cmake_minimum_required(VERSION 3.22)
project(loom_gpu_check LANGUAGES C CXX)
set(CMAKE_CXX_STANDARD 20)
set(CMAKE_CUDA_ARCHITECTURES 80 90)
enable_language(CUDA)
set(LOOM "$root")
find_package(absl CONFIG REQUIRED)
find_package(nlohmann_json CONFIG REQUIRED)
find_package(GTest REQUIRED)
find_package(OpenMP REQUIRED)
find_package(CUDAToolkit REQUIRED)
find_path(OPENBLAS_INCLUDE_DIR cblas.h PATH_SUFFIXES openblas-pthread openblas REQUIRED)
find_library(OPENBLAS_LIBRARY NAMES openblas REQUIRED)
file(GLOB common_sources \${LOOM}/common/*.cc)
file(GLOB cpu_sources \${LOOM}/kernels/cpu/*.cc)
file(GLOB cuda_sources \${LOOM}/kernels/cuda/*.cc \${LOOM}/kernels/cuda/*.cu)
file(GLOB test_sources \${LOOM}/tests/cuda/*.cc)
add_library(loom_kernels_all STATIC \${common_sources} \${cpu_sources} \${cuda_sources})
set_target_properties(loom_kernels_all PROPERTIES CUDA_STANDARD 17 CUDA_RUNTIME_LIBRARY Shared)
target_include_directories(loom_kernels_all PUBLIC \${LOOM} PRIVATE \${OPENBLAS_INCLUDE_DIR})
target_compile_options(loom_kernels_all PRIVATE \$<\$<COMPILE_LANGUAGE:CXX>:-mavx2 -mfma -mf16c>)
target_link_libraries(loom_kernels_all PUBLIC absl::status absl::statusor absl::strings
  absl::str_format absl::flat_hash_map nlohmann_json::nlohmann_json \${OPENBLAS_LIBRARY}
  OpenMP::OpenMP_CXX CUDA::cudart CUDA::cublas)
add_executable(loom_cuda_tests \${test_sources} \${LOOM}/tests/test_paths.cc)
target_compile_definitions(loom_cuda_tests PRIVATE LOOM_SOURCE_DIR="\${LOOM}"
  LOOM_BINARY_DIR="\${CMAKE_BINARY_DIR}" LOOM_SHARED_FIXTURES="\${LOOM}/../shared/fixtures")
target_link_libraries(loom_cuda_tests PRIVATE loom_kernels_all GTest::gtest GTest::gtest_main)
add_executable(loom-bench-cuda-kernels \${LOOM}/tools/bench_cuda_kernels.cc)
target_link_libraries(loom-bench-cuda-kernels PRIVATE loom_kernels_all)
EOF
  local generator=()
  command -v ninja >/dev/null && generator=(-G Ninja)
  if ! cmake -S "$project" -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
      >"$work/configure.log" 2>&1; then
    local missing
    missing=$(grep -oE 'provided by "[^"]+"|Could NOT find [A-Za-z_]+|OPENBLAS_[A-Z_]+-NOTFOUND' \
      "$work/configure.log" | sed -E 's/provided by "([^"]+)"/\1/; s/Could NOT find //' | sort -u |
      tr '\n' ' ')
    say "cannot build from source on this machine: missing ${missing:-see $work/configure.log}"
    say "the kernel tests need Abseil, GoogleTest, nlohmann-json and OpenBLAS, which a GPU machine"
    say "with only CUDA and PyTorch lacks. Run tools/gpu_bundle.sh on a build machine and bring"
    say "build/gpu-bundle (or build/gpu-bundle.tar.gz) here."
    exit 1
  fi
  if ! cmake --build "$build" -j "$(nproc)" >"$work/build.log" 2>&1; then
    tail -40 "$work/build.log"
    say "the build from source failed (log: $work/build.log)"
    exit 1
  fi
  bin=$build
}

have_bundle=0
if [ ! -d "$bundle" ] && [ -f "$bundle.tar.gz" ]; then
  tar -xzf "$bundle.tar.gz" -C "$work" && bundle=$work/$(basename "$bundle")
fi
if [ -x "$bundle/bin/loom_cuda_tests" ]; then
  use_bundle "$bundle"
else
  build_from_source
fi

# Whether step a found no GPU where the steps after it need one.
gpu_missing() { [ -n "$no_gpu" ] && [ "$device" != cpu ]; }

# Counts "[  SKIPPED ] N tests" in a GoogleTest log (empty when none).
skipped_in() { sed -nE 's/^\[  SKIPPED \] ([0-9]+) tests?, listed below:.*/\1/p' "$1"; }

# ---- a. The CUDA kernel tests. On a GPU machine nothing may skip; a test that finds no device
# says so, and then the GPU steps after this one are skipped.
begin_step "a. CUDA kernel tests"
timeout 600 "$bin/loom_cuda_tests" --gtest_color=no 2>&1 | tee "$work/kernel_tests.log"
rc=${PIPESTATUS[0]}
skipped=$(skipped_in "$work/kernel_tests.log")
passed=$(sed -nE 's/^\[  PASSED  \] ([0-9]+) tests?.*/\1/p' "$work/kernel_tests.log")
no_gpu=$(sed -n 's/.*no CUDA device, skipping a GPU test: *//p' "$work/kernel_tests.log" | head -1)
grep -q 'no CUDA device' "$work/kernel_tests.log" && no_gpu=${no_gpu:-no CUDA device}
if [ -n "$no_gpu" ]; then
  end_step "a. CUDA kernel tests" FAIL "${skipped:-all} skipped: no CUDA device: $no_gpu"
elif [ -n "$skipped" ] && [ "$skipped" -gt 0 ]; then
  end_step "a. CUDA kernel tests" FAIL "$skipped skipped; see kernel_tests.log"
elif [ "$rc" -ne 0 ]; then
  end_step "a. CUDA kernel tests" FAIL "exit $rc; see kernel_tests.log"
else
  end_step "a. CUDA kernel tests" PASS "${passed:-?} tests"
fi

# ---- b. HfReferenceTest on the GPU.
# Left out: Stories260K (needs ../shared/fixtures, absent on a GPU machine, and
# loom-convert-llama2c) and GenerateCliPrintsTheTextOfTransformers (runs `loom generate` of the
# build tree on the CPU: it does not use LOOM_TEST_DEVICE).
hf_filter='HfReferenceTest.*-HfReferenceTest.Stories260KConvertedByOurToolMatchesTransformers'
hf_filter+=':HfReferenceTest.GenerateCliPrintsTheTextOfTransformers'
if [ "$quick" = 1 ]; then
  hf_filter='HfReferenceTest.EveryFixtureModelMatchesTransformers'
  hf_filter+=':HfReferenceTest.TrainedModelTextInTextOutMatchesTransformers'
fi
hf_filter=${LOOM_GPU_CHECK_HF_FILTER:-$hf_filter}

# The e2e test binary reads tests/data and models/ from the source tree it was built in
# (MANIFEST's "source dir"); where that path is absent here, it becomes a link to this checkout.
link_source_dir() {
  local src
  src=$(sed -n 's/^source dir: //p' "$bundle/MANIFEST" 2>/dev/null)
  [ -z "$src" ] || [ "$src" -ef "$root" ] && return 0
  if [ -e "$src" ]; then
    say "note: the e2e tests read their fixtures from $src (where the bundle was built), not $root"
    return 0
  fi
  if mkdir -p "$(dirname "$src")" 2>/dev/null && ln -s "$root" "$src" 2>/dev/null; then
    made_link=$src
    say "linked $src -> $root (the source dir the e2e test binary was built in)"
    return 0
  fi
  say "cannot link $src -> $root: the e2e tests would not find their fixtures"
  return 1
}

if [ "$have_bundle" = 0 ]; then
  skip_step "b. HfReferenceTest on $device" "needs the bundle (built from source: kernels only)"
elif gpu_missing; then
  skip_step "b. HfReferenceTest on $device" "no CUDA device"
elif ! link_source_dir; then
  begin_step "b. HfReferenceTest on $device"
  end_step "b. HfReferenceTest on $device" FAIL "no fixtures at the test's source dir"
else
  begin_step "b. HfReferenceTest on $device"
  LOOM_TEST_DEVICE=$device timeout 600 "$bin/loom_e2e_tests" --gtest_color=no \
    "--gtest_filter=$hf_filter" "--gtest_output=xml:$work/hf_reference.xml" 2>&1 |
    tee "$work/hf_reference.log"
  rc=${PIPESTATUS[0]}
  skipped=$(skipped_in "$work/hf_reference.log")
  passed=$(sed -nE 's/^\[  PASSED  \] ([0-9]+) tests?.*/\1/p' "$work/hf_reference.log")
  # The worst logit difference per dtype, from the test's table (| model | dtype | n/m | diff |).
  worst=$(awk -F'|' 'NF >= 6 && $3 ~ /^ (bfloat16|float16|float32) $/ {
      gsub(/ /, "", $3); d = $5 + 0; if (!($3 in w) || d > w[$3]) w[$3] = d
    } END {for (t in w) printf "%s%s %.2g", (n++ ? ", " : ""), t, w[t]}' "$work/hf_reference.log")
  note="${passed:-0} tests passed; max logit diff ${worst:-?}"
  if [ "$rc" -ne 0 ]; then
    end_step "b. HfReferenceTest on $device" FAIL "exit $rc; $note; see hf_reference.log"
  elif [ -n "$skipped" ] && [ "$skipped" -gt 0 ]; then
    end_step "b. HfReferenceTest on $device" FAIL "$skipped skipped; $note"
  else
    end_step "b. HfReferenceTest on $device" PASS "$note"
  fi
fi

# ---- c. loom serve on the GPU against loom generate on the CPU.
# The process ids whose parent is $1 (from /proc: no procps needed).
children_of() {
  local s
  for s in /proc/[0-9]*/status; do
    awk -v p="$1" '/^PPid:/ && $2 == p {split(FILENAME, f, "/"); print f[3]}' "$s" 2>/dev/null
  done
}
# output_ids of `loom generate --json`'s line.
output_ids() { sed -n 's/.*"output_ids":\[\([^]]*\)\].*/\1/p' "$1" | head -1; }

# serve_and_compare NAME MODEL PROMPT-FLAGS...: 16 greedy tokens through a GPU server, equal to
# the CPU's in process; the server stopped and nothing of it left. Adds what failed to failures.
serve_and_compare() {
  local name=$1 model=$2 log=$work/serve_$1.log address="" i p
  shift 2
  served+=("$name")
  fail() { failures+=("$*"); say "$*"; }
  local gen=(--max-tokens 16 --ignore-eos --json "$@")
  if ! timeout 120 "$bin/loom" generate --model "$model" --device cpu "${gen[@]}" \
      >"$work/cpu_$name.json" 2>"$work/cpu_$name.err"; then
    fail "$name: loom generate --device cpu failed: $(tail -1 "$work/cpu_$name.err")"
    return 1
  fi
  "$bin/loom" serve --model "$model" --device "$device" --tp 1 --port 0 --http-port 0 >"$log" 2>&1 &
  server_pid=$!
  for ((i = 0; i < 1200; i++)); do
    grep -q '^loom serve: ready' "$log" && break
    alive "$server_pid" || break
    sleep 0.1
  done
  address=$(sed -n 's/^loom serve: listening on //p' "$log" | head -1)
  if ! grep -q '^loom serve: ready' "$log" || [ -z "$address" ]; then
    fail "$name: the server did not get ready: $(tail -1 "$log")"
    mapfile -t worker_pids < <(children_of "$server_pid")
    for p in "$server_pid" "${worker_pids[@]}"; do
      alive "$p" && kill -KILL "$p" 2>/dev/null
    done
    wait "$server_pid" 2>/dev/null
    server_pid=""
    worker_pids=()
    return 1
  fi
  mapfile -t worker_pids < <(children_of "$server_pid")
  grep '^loom serve: ready' "$log" | sed "s/^/gpu_check: $name: /"
  if timeout 120 "$bin/loom" generate --address "$address" "${gen[@]}" \
      >"$work/gpu_$name.json" 2>"$work/gpu_$name.err"; then
    local cpu gpu
    cpu=$(output_ids "$work/cpu_$name.json")
    gpu=$(output_ids "$work/gpu_$name.json")
    say "$name: cpu [$cpu]"
    say "$name: $device [$gpu]"
    if [ -z "$cpu" ] || [ "$cpu" != "$gpu" ]; then
      fail "$name: the $device server's tokens differ from the CPU's"
    fi
  else
    fail "$name: loom generate --address $address failed: $(tail -1 "$work/gpu_$name.err")"
  fi
  timeout 30 "$bin/loom" stop --address "$address" >/dev/null 2>&1 || fail "$name: loom stop failed"
  # The workers exit with the server: wait for all of them, at most 30 s.
  local left=()
  for ((i = 0; i < 300; i++)); do
    left=()
    for p in "$server_pid" "${worker_pids[@]}"; do
      alive "$p" && left+=("$p")
    done
    [ ${#left[@]} = 0 ] && break
    sleep 0.1
  done
  if [ ${#left[@]} -gt 0 ]; then
    fail "$name: processes left 30 s after loom stop: ${left[*]} (killed)"
    kill -KILL "${left[@]}" 2>/dev/null
  fi
  wait "$server_pid" 2>/dev/null
  server_pid=""
  worker_pids=()
}

if [ "$have_bundle" = 0 ]; then
  skip_step "c. loom serve on $device" "needs the bundle (built from source: kernels only)"
elif gpu_missing; then
  skip_step "c. loom serve on $device" "no CUDA device"
else
  begin_step "c. loom serve on $device"
  failures=()
  served=()
  # An f32 fixture (ids in, ids out) and the trained bf16 model (text in, text out).
  if [ -f "$root/tests/data/models/qwen3-f32/config.json" ]; then
    serve_and_compare qwen3-f32 "$root/tests/data/models/qwen3-f32" --prompt-ids 1,2,3,4,5
  fi
  if [ -f "$root/models/war-and-peace/v2/config.json" ]; then
    serve_and_compare war-and-peace-v2 "$root/models/war-and-peace/v2" --prompt "Prince Andrew"
  fi
  if [ ${#served[@]} = 0 ]; then
    end_step "c. loom serve on $device" FAIL "no committed model found under $root"
  elif [ ${#failures[@]} -gt 0 ]; then
    end_step "c. loom serve on $device" FAIL "$(printf '%s; ' "${failures[@]}" | tr '\n' ' ')"
  else
    end_step "c. loom serve on $device" PASS "${served[*]}: 16 tokens equal to the CPU's; nothing left"
  fi
fi

# ---- d. The kernel benchmark, then loom bench on a Qwen3-0.6B-shaped model.
copy_gbps=""
if [ "$run_bench" = 0 ]; then
  skip_step "d. kernel benchmark" "--tests-only"
elif [ "$device" = cpu ]; then
  skip_step "d. kernel benchmark" "CUDA only"
elif gpu_missing; then
  skip_step "d. kernel benchmark" "no CUDA device"
else
  begin_step "d. kernel benchmark"
  bench_args=()
  [ "$quick" = 1 ] && bench_args=(--quick)
  timeout 600 "$bin/loom-bench-cuda-kernels" "${bench_args[@]}" 2>&1 | tee "$work/kernel_bench.md"
  rc=${PIPESTATUS[0]}
  copy_gbps=$(sed -nE 's/.*device copy ([0-9.]+) GB\/s.*/\1/p' "$work/kernel_bench.md" | head -1)
  if [ "$rc" -ne 0 ]; then
    end_step "d. kernel benchmark" FAIL "exit $rc"
  else
    end_step "d. kernel benchmark" PASS "device copy ${copy_gbps:-?} GB/s"
  fi
fi

if [ "$run_bench" = 0 ] || [ "$quick" = 1 ]; then
  skip_step "d. loom bench on $device" "$([ "$quick" = 1 ] && echo --quick || echo --tests-only)"
elif [ "$have_bundle" = 0 ]; then
  skip_step "d. loom bench on $device" "needs the bundle (built from source: kernels only)"
elif gpu_missing; then
  skip_step "d. loom bench on $device" "no CUDA device"
else
  begin_step "d. loom bench on $device"
  model=$work/qwen3-0.6b
  if ! timeout 300 "$bin/loom-make-model" --preset qwen3-0.6b --output "$model" \
      >"$work/make_model.log" 2>&1; then
    end_step "d. loom bench on $device" FAIL "loom-make-model failed: $(tail -1 "$work/make_model.log")"
  else
    timeout 600 "$bin/loom" bench --device "$device" --model "$model" --batch 1,8,32 2>&1 |
      tee "$work/loom_bench.md"
    rc=${PIPESTATUS[0]}
    # loom bench's "vs memcpy"/"vs read" columns are the host's; on a GPU the ceiling for
    # reading the weights once per decode step is the device's copy bandwidth (step d above).
    {
      echo
      echo "| batch | decode tok/s | decode step ms | weight GB/s | of device copy ${copy_gbps:-?} GB/s |"
      echo "|---:|---:|---:|---:|---:|"
      awk -F'|' -v c="${copy_gbps:-0}" '$2 ~ /^ [0-9]+ $/ && NF >= 10 {
          share = c > 0 ? sprintf("%.1f%%", 100 * $8 / c) : "-"
          printf "| %d | %s | %s | %s | %s |\n", $2, $6 + 0, $7 + 0, $8 + 0, share
        }' "$work/loom_bench.md"
    } | tee "$work/loom_bench_summary.md"
    rows=$(grep -c '^| [0-9]' "$work/loom_bench_summary.md")
    if [ "$rc" -ne 0 ] || [ "$rows" -lt 3 ]; then
      end_step "d. loom bench on $device" FAIL "exit $rc, $rows of 3 batches"
    else
      best=$(awk -F'|' '/^\| [0-9]/ {print $3 + 0}' "$work/loom_bench_summary.md" | tr '\n' '/' |
        sed 's/\/$//')
      end_step "d. loom bench on $device" PASS "decode tok/s at batch 1/8/32: $best"
    fi
  fi
  rm -rf "$model"
fi

# ---- The summary.
status=0
{
  echo
  echo "## gpu_check$([ "$quick" = 1 ] && echo ' --quick')"
  echo
  echo "| step | result | seconds | notes |"
  echo "|---|---|---:|---|"
  for i in "${!step_names[@]}"; do
    echo "| ${step_names[$i]} | ${step_results[$i]} | ${step_seconds[$i]} | ${step_notes[$i]} |"
  done
} | tee "$work/summary.md"
for i in "${!step_names[@]}"; do
  [ "${step_results[$i]}" = PASS ] || status=1
done
if [ -n "$no_gpu" ]; then
  say "no CUDA device here ($no_gpu): the GPU steps did not run"
fi
# At most eight files (what a device call brings back): step c's files go as one.
if [ -n "$logs" ] && mkdir -p "$logs"; then
  for f in "$work"/serve_*.log "$work"/cpu_* "$work"/gpu_*; do
    [ -f "$f" ] && { echo "==> $(basename "$f")"; cat "$f"; }
  done >"$work/serve.log"
  for f in summary.md kernel_tests.log hf_reference.log hf_reference.xml serve.log \
      kernel_bench.md loom_bench.md; do
    [ -s "$work/$f" ] && cp "$work/$f" "$logs/"
  done
  [ -f "$work/loom_bench_summary.md" ] && cat "$work/loom_bench_summary.md" >>"$logs/loom_bench.md"
fi
say "$([ $status = 0 ] && echo OK || echo FAILED) (logs in $work)"
exit $status
