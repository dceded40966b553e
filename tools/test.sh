#!/usr/bin/env bash
# Every test on a fresh machine: install what is missing, build, run the suite, then rebuild the
# parser tests under AddressSanitizer/UBSan and run them.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/tools/setup.sh"
"$root/tools/build.sh"
build=${LOOM_BUILD_DIR:-$root/build}
jobs=$(nproc)
# The example Python client (tools/loom_client.py) is tested too: its packages live in a virtual
# environment inside the build directory, installed from PyPI on first use.
venv=$build/python-client
if ! "$venv/bin/python" -c "import grpc_tools" 2>/dev/null; then
  python3 -m venv "$venv" && "$venv/bin/pip" install -q -r "$root/tools/requirements-client.txt"
fi
export LOOM_PYTHON=$venv/bin/python
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
