#!/usr/bin/env bash
# Every test on a fresh machine: install what is missing, build, run the suite, then rebuild the
# parser tests under AddressSanitizer/UBSan and run them, and fuzz the parsers for a bounded time
# (tools/fuzz.sh; LOOM_FUZZ_SECONDS per target, 20 by default; 0 skips it).
# A test whose client or tool is missing fails, saying why. Only three kinds skip, and the list
# of skipped tests with the reason of each is printed after the suite: GPU tests where there is
# no GPU, tests of ../shared/fixtures where that folder is absent, and tests that need a privilege
# the machine lacks.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/tools/setup.sh"
"$root/tools/build.sh"
build=${LOOM_BUILD_DIR:-$root/build}
jobs=$(nproc)
# The example Python client (tools/loom_client.py) is tested too: its packages live in a virtual
# environment inside the build directory, installed from PyPI on first use. When that fails the
# suite still runs, and the client's test fails with the cause.
venv=$build/python-client
if ! "$venv/bin/python" -c "import grpc, grpc_tools, openai" 2>/dev/null; then
  echo "test.sh: installing the Python client's packages into $venv" >&2
  if ! { python3 -m venv --clear "$venv" &&
         "$venv/bin/pip" install -q -r "$root/tools/requirements-client.txt"; }; then
    echo "test.sh: could not set up $venv (python3, python3-venv and PyPI are needed);" \
      "PythonClientTest will fail" >&2
  fi
fi
export LOOM_PYTHON=$venv/bin/python

suite=0
(cd "$build" && ctest --output-on-failure -j "$jobs" --timeout 600) || suite=$?
# The skipped tests and why, from gtest's "file:line: Skipped" message in each test's output.
skips=$(awk '
  /^[0-9]+\/[0-9]+ Test: / { name = $0; sub(/^[0-9]+\/[0-9]+ Test: /, "", name); why = ""; on = 0 }
  /^\[  SKIPPED \]/ { on = 0 }
  on { why = why (why == "" ? "" : " ") $0 }
  /: Skipped$/ { on = 1 }
  /^<end of output>$/ { if (why != "") print "  " name ": " why; why = "" }
' "$build/Testing/Temporary/LastTest.log" 2>/dev/null || true)
if [ -n "$skips" ]; then
  echo "== skipped tests ($(grep -c . <<<"$skips")) and why =="
  echo "$skips"
fi
[ "$suite" -eq 0 ] || exit "$suite"

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

# Each fuzz target for a bounded time from its seed corpus; a crash fails the run.
fuzz_seconds=${LOOM_FUZZ_SECONDS:-20}
if [ "$fuzz_seconds" != 0 ]; then
  "$root/tools/fuzz.sh" "$fuzz_seconds"
fi
