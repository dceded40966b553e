#!/usr/bin/env bash
# Every test on a fresh machine: install what is missing, build, run the suite, then rebuild the
# parser tests under AddressSanitizer/UBSan and run them.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/tools/setup.sh"
"$root/tools/build.sh"
build=${LOOM_BUILD_DIR:-$root/build}
jobs=$(nproc)
(cd "$build" && ctest --output-on-failure -j "$jobs" --timeout 600)

asan=${LOOM_ASAN_BUILD_DIR:-$root/build-asan}
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
if [ ! -f "$asan/CMakeCache.txt" ]; then
  cmake -S "$root" -B "$asan" "${generator[@]}" -DCMAKE_BUILD_TYPE=Debug -DLOOM_ASAN=ON \
    -DLOOM_CPU_ONLY=ON >/dev/null
fi
cmake --build "$asan" -j "$jobs" --target loom_common_tests
echo "== parser tests under AddressSanitizer =="
"$asan/tests/loom_common_tests" --gtest_brief=1
