#!/usr/bin/env bash
# Builds the CUDA kernel tests and benchmark on a build machine (the CUDA toolkit is needed, a
# GPU is not) and packs them with the shared libraries a GPU machine may lack into
# build/gpu-bundle/, for tools/gpu_check.sh to run there:
#   build/gpu-bundle/bin/  loom_cuda_tests, loom-bench-cuda-kernels (stripped)
#   build/gpu-bundle/lib/  Abseil, libgomp, libcudart, ... (what ldd resolves outside the base system)
#   build/gpu-bundle/MANIFEST
# and the same packed as build/gpu-bundle.tar.gz.
#
# Left out: the C/C++ runtime (libc, libm, libstdc++, libgcc_s, the loader), which every Linux
# machine has, the CUDA driver (libcuda), which a GPU machine has, and cuBLAS (libcublas and
# libcublasLt, over 500 MiB): gpu_check.sh finds the GPU machine's own, from its CUDA toolkit or
# the nvidia-cublas wheel PyTorch ships. --with-cublas packs them too.
# OpenBLAS (the CPU reference the tests compare against) is linked statically when its static
# archive exists, which keeps 36 MiB of shared library out of the bundle.
#
# Usage: tools/gpu_bundle.sh [--with-cublas]
# Environment: LOOM_GPU_BUILD_DIR (default build-gpu), the CMake build tree used.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${LOOM_GPU_BUILD_DIR:-$root/build-gpu}
out=$root/build/gpu-bundle
with_cublas=0
for arg in "$@"; do
  case $arg in
    --with-cublas) with_cublas=1 ;;
    *) echo "usage: $0 [--with-cublas]" >&2; exit 1 ;;
  esac
done
[ -d /usr/local/cuda/bin ] && export PATH="$PATH:/usr/local/cuda/bin"
if ! command -v nvcc >/dev/null; then
  echo "gpu_bundle: nvcc not found; the CUDA toolkit is needed to build the bundle" >&2
  exit 1
fi

generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
if [ ! -f "$build/CMakeCache.txt" ]; then
  blas=()
  for a in /usr/lib/x86_64-linux-gnu/libopenblas.a /usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.a; do
    if [ -f "$a" ]; then blas=(-DOPENBLAS_LIBRARY="$a"); break; fi
  done
  cmake -S "$root" -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
    -DLOOM_BUILD_TESTS=ON "${blas[@]}" >/dev/null
fi
cmake --build "$build" -j "$(nproc)" --target loom_cuda_tests loom-bench-cuda-kernels

rm -rf "$out"
mkdir -p "$out/bin" "$out/lib"
binaries=("$build/tests/loom_cuda_tests" "$build/tools/loom-bench-cuda-kernels")
for b in "${binaries[@]}"; do
  strip --strip-unneeded -o "$out/bin/$(basename "$b")" "$b"
done

# Base-system and driver libraries stay behind; cuBLAS unless asked for.
skip='^(linux-vdso|ld-linux|libc\.|libm\.|libdl\.|librt\.|libpthread\.|libstdc\+\+|libgcc_s|libcuda\.)'
[ "$with_cublas" = 1 ] || skip="$skip|^libcublas"
for b in "${binaries[@]}"; do
  ldd "$b" | awk '/=> \// {print $1, $3}'
done | sort -u | while read -r name path; do
  if [[ $name =~ $skip ]]; then continue; fi
  cp -L "$path" "$out/lib/$name"
done

cublas=$(ldd "${binaries[0]}" | awk '/libcublas\.so/ {print $1; exit}')
{
  echo "built: $(date -u +%Y-%m-%dT%H:%M:%SZ) from $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$root" diff --quiet 2>/dev/null || echo ' (with local changes)')"
  echo "nvcc: $(nvcc --version | sed -n 's/.*release \([0-9.]*\).*/\1/p')"
  echo "cuda architectures: $(grep -o 'arch=compute_[0-9]*' "$build/build.ninja" 2>/dev/null | sort -u | tr '\n' ' ')"
  echo "cublas: ${cublas:-none} ($([ "$with_cublas" = 1 ] && echo bundled || echo 'from the GPU machine'))"
  echo "libraries:"
  (cd "$out/lib" && ls -1)
} >"$out/MANIFEST"
# The same as one file, for copying where a directory of 40 MiB is awkward.
tar -czf "$out.tar.gz" -C "$(dirname "$out")" "$(basename "$out")"
echo "gpu_bundle: $(du -sh "$out" | cut -f1) in $out ($(ls "$out/lib" | wc -l) libraries);" \
  "$(du -sh "$out.tar.gz" | cut -f1) as $out.tar.gz"
