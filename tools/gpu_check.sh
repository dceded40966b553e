#!/usr/bin/env bash
# The one command for a GPU machine: runs every CUDA kernel test (each kernel against the CPU
# reference) and the kernel benchmark, which prints a Markdown table.
#
# Where the binaries come from:
#  1. build/gpu-bundle/ (or build/gpu-bundle.tar.gz), made by tools/gpu_bundle.sh on a build
#     machine: run with LD_LIBRARY_PATH set to the bundle's lib/, plus the directory of this
#     machine's cuBLAS (its CUDA toolkit, or the nvidia-cublas wheel that PyTorch brings) when
#     the bundle does not carry cuBLAS.
#  2. Otherwise a build from source of only what the check needs (common/, kernels/, tests/cuda/,
#     the benchmark) with CMake and nvcc. That needs Abseil, GoogleTest, nlohmann-json and
#     OpenBLAS development files; a GPU machine with just the CUDA toolkit and PyTorch has none
#     of them, and then the script says so and stops: bring the bundle instead.
#
# Usage: tools/gpu_check.sh [--quick] [--tests-only]
#   --quick       the benchmark's shorter run
#   --tests-only  skip the benchmark
# Environment: LOOM_GPU_BUNDLE (default build/gpu-bundle), LOOM_GPU_CHECK_LOG_DIR (copies of the
# test log and the benchmark table go there too).
# Exit status: 0 when every test passed (none skipped) and the benchmark ran.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bundle=${LOOM_GPU_BUNDLE:-$root/build/gpu-bundle}
logs=${LOOM_GPU_CHECK_LOG_DIR:-}
bench_args=()
run_bench=1
for arg in "$@"; do
  case $arg in
    --quick) bench_args+=(--quick) ;;
    --tests-only) run_bench=0 ;;
    *) echo "usage: $0 [--quick] [--tests-only]" >&2; exit 1 ;;
  esac
done
[ -d /usr/local/cuda/bin ] && export PATH="$PATH:/usr/local/cuda/bin"
work=$(mktemp -d /tmp/loom-gpu-check.XXXXXX)

say() { echo "gpu_check: $*"; }

if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader |
    sed 's/^/gpu_check: GPU: /'
else
  say "nvidia-smi not found; going on (the tests will say whether CUDA sees a device)"
fi

# The directory holding this machine's libcublas.so.<major>, searched in the usual places.
find_cublas() {
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

use_bundle() {
  bin=$1/bin
  libpath=$1/lib
  if ! ls "$libpath"/libcublas.so.* >/dev/null 2>&1; then
    local want dir
    want=$(sed -n 's/^cublas: \(libcublas\.so\.[0-9]*\).*/\1/p' "$1/MANIFEST" 2>/dev/null)
    want=${want:-libcublas.so.13}
    if dir=$(find_cublas "$want"); then
      say "cuBLAS: $dir/$want"
      libpath="$libpath:$dir"
    else
      say "$want not found on this machine (CUDA toolkit, nvidia-cublas wheel, ldconfig);"
      say "rebuild the bundle with tools/gpu_bundle.sh --with-cublas"
      exit 1
    fi
  fi
  export LD_LIBRARY_PATH="$libpath${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  local missing
  missing=$(ldd "$bin/loom_cuda_tests" "$bin/loom-bench-cuda-kernels" | grep 'not found' | sort -u)
  if [ -n "$missing" ]; then
    say "the bundle's binaries miss libraries here:"
    echo "$missing"
    exit 1
  fi
  sed 's/^/gpu_check: bundle: /' "$1/MANIFEST" | head -4
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

if [ ! -d "$bundle" ] && [ -f "$bundle.tar.gz" ]; then
  tar -xzf "$bundle.tar.gz" -C "$work" && bundle=$work/$(basename "$bundle")
fi
if [ -x "$bundle/bin/loom_cuda_tests" ]; then
  use_bundle "$bundle"
else
  build_from_source
fi

status=0
say "running the CUDA kernel tests"
# On a GPU machine nothing may skip.
"$bin/loom_cuda_tests" --gtest_color=no 2>&1 | tee "$work/tests.log"
tests_rc=${PIPESTATUS[0]}
skipped=$(sed -nE 's/^\[  SKIPPED \] ([0-9]+) tests?, listed below:.*/\1/p' "$work/tests.log")
if [ "$tests_rc" -ne 0 ]; then
  say "kernel tests FAILED"
  status=1
elif [ -n "$skipped" ] && [ "$skipped" -gt 0 ]; then
  say "kernel tests: $skipped skipped, so the GPU was not used: failing"
  status=1
else
  say "kernel tests passed"
fi

if [ "$run_bench" = 1 ]; then
  say "running the kernel benchmark"
  "$bin/loom-bench-cuda-kernels" "${bench_args[@]}" 2>&1 | tee "$work/bench.md"
  if [ "${PIPESTATUS[0]}" -ne 0 ]; then
    say "the benchmark FAILED"
    status=1
  fi
fi
if [ -n "$logs" ]; then
  mkdir -p "$logs" && cp "$work"/*.log "$work"/*.md "$logs"/ 2>/dev/null
fi
say "$([ $status = 0 ] && echo OK || echo FAILED) (logs in $work)"
exit $status
