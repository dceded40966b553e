#!/usr/bin/env bash
# Installs every system dependency Loom builds and tests with, from Debian packages. Idempotent:
# quiet and quick when everything is present. Run as root (or with sudo available).
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git
  libabsl-dev nlohmann-json3-dev libopenblas-dev libpcre2-dev libicu-dev
  libgtest-dev libgmock-dev libgloo-dev
  libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc
  libcpp-httplib-dev  # the OpenAI-compatible HTTP API
  openssl  # the TLS tests make a self-signed certificate with it
  iproute2  # tests/e2e/multi_host_test.cc: network namespaces joined by veth pairs (ip netns)
  python3 python3-venv  # the example Python client and its test (tools/test.sh makes the venv)
  # The fuzz targets only (tools/fuzz.sh, tests/fuzz): clang with libFuzzer and the sanitizer
  # runtimes, and clang's OpenMP for the configure step. The main build stays on g++.
  clang-14 libclang-rt-14-dev libomp-14-dev
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "setup: installing ${missing[*]}" >&2
sudo_cmd=()
[ "$(id -u)" -ne 0 ] && sudo_cmd=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
