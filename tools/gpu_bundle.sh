#!/usr/bin/env bash
# Builds what tools/gpu_check.sh runs on a GPU machine, on a build machine (the CUDA toolkit is
# needed, a GPU is not), and packs it with the shared libraries a GPU machine may lack into
# build/gpu-bundle/:
#   build/gpu-bundle/bin/  loom_cuda_tests, loom-bench-cuda-kernels (the kernels against the CPU),
#                          loom_e2e_tests (HfReferenceTest on LOOM_TEST_DEVICE=cuda), loom,
#                          loom-worker, loom-make-model (serving and loom bench); all stripped
#   build/gpu-bundle/lib/  gRPC, Protobuf, Abseil, Gloo, OpenBLAS, ICU, libgomp, libcudart, ...
#                          (what ldd resolves outside the base system)
#   build/gpu-bundle/MANIFEST
# and the same packed as build/gpu-bundle.tar.gz (gzip -9; under 40 MiB, so it travels to a
# device machine beside the working tree).
#
# Left out: the C/C++ runtime (libc, libm, libstdc++, libgcc_s, the loader), which every Linux
# machine has; the CUDA driver (libcuda), which a GPU machine has; cuBLAS (libcublas and
# libcublasLt, over 500 MiB) and NCCL when over 15 MiB (libnccl is about 200 MiB): gpu_check.sh
# finds the GPU machine's own, from its CUDA toolkit or the nvidia-cublas / nvidia-nccl wheels
# PyTorch ships. --with-cublas packs cuBLAS too.
# OpenBLAS is linked shared: four of the binaries use it, and a static copy in each (about
# 6 MiB compressed) would cost more than the one shared library (10 MiB compressed).
#
# The build tree is configured for the GPU it is meant for: CUDA architecture 90-real (sm_90
# machine code, no PTX: H100 and H200) unless LOOM_GPU_CUDA_ARCHITECTURES says otherwise (e.g.
# "80-real;90-real" for an A100 too). The kernels are linked into each of five binaries, and the
# default 80+90 machine code and PTX of the main build would put the bundle over 40 MiB.
#
# Usage: tools/gpu_bundle.sh [--with-cublas]
# Environment: LOOM_GPU_BUILD_DIR (default build-gpu), the CMake build tree used: an existing
# tree is used as it is configured (LOOM_GPU_BUILD_DIR=build reuses the main build, whose 80+90
# fatbins make the bundle about 43 MiB); LOOM_GPU_CUDA_ARCHITECTURES (default 90-real), for a
# tree configured here.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${LOOM_GPU_BUILD_DIR:-$root/build-gpu}
build=$(cd "$root" && mkdir -p "$build" && cd "$build" && pwd)
archs=${LOOM_GPU_CUDA_ARCHITECTURES:-90-real}
out=$root/build/gpu-bundle
max_bundle_mib=40
max_nccl_mib=15
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
  cmake -S "$root" -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
    -DLOOM_BUILD_TESTS=ON "-DCMAKE_CUDA_ARCHITECTURES=$archs" >/dev/null
fi
targets=(loom_cuda_tests loom-bench-cuda-kernels loom_e2e_tests loom loom-worker loom-make-model)
cmake --build "$build" -j "$(nproc)" --target "${targets[@]}"

rm -rf "$out"
mkdir -p "$out/bin" "$out/lib"
binaries=("$build/tests/loom_cuda_tests" "$build/tools/loom-bench-cuda-kernels"
          "$build/tests/loom_e2e_tests" "$build/tools/loom" "$build/worker/loom-worker"
          "$build/tools/loom-make-model")
for b in "${binaries[@]}"; do
  strip --strip-unneeded -o "$out/bin/$(basename "$b")" "$b"
done

# Base-system and driver libraries stay behind; cuBLAS unless asked for; NCCL when large.
skip='^(linux-vdso|ld-linux|libc\.|libm\.|libdl\.|librt\.|libpthread\.|libstdc\+\+|libgcc_s|libcuda\.)'
[ "$with_cublas" = 1 ] || skip="$skip|^libcublas"
nccl=$(ldd "$build/worker/loom-worker" | awk '/libnccl\.so/ {print $1, $3; exit}')
nccl_name=${nccl%% *}
nccl_note="none"
if [ -n "$nccl" ]; then
  nccl_mib=$(( $(stat -L -c %s "${nccl#* }") >> 20 ))
  if [ "$nccl_mib" -gt "$max_nccl_mib" ]; then
    skip="$skip|^libnccl"
    nccl_note="$nccl_name (from the GPU machine: $nccl_mib MiB here)"
  else
    nccl_note="$nccl_name (bundled)"
  fi
fi
for b in "${binaries[@]}"; do
  ldd "$b" | awk '/=> \// {print $1, $3}'
done | sort -u | while read -r name path; do
  if [[ $name =~ $skip ]]; then continue; fi
  cp -L "$path" "$out/lib/$name"
  chmod u+w "$out/lib/$name"
  strip --strip-unneeded "$out/lib/$name" 2>/dev/null || true
done

cublas=$(ldd "${binaries[0]}" | awk '/libcublas\.so/ {print $1; exit}')
{
  echo "built: $(date -u +%Y-%m-%dT%H:%M:%SZ) from $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$root" diff --quiet 2>/dev/null || echo ' (with local changes)')"
  echo "nvcc: $(nvcc --version | sed -n 's/.*release \([0-9.]*\).*/\1/p')"
  echo "cuda architectures: $(grep -oE ',code=\[?[a-z_0-9,]+' "$build/build.ninja" 2>/dev/null | sed 's/,code=\[\{0,1\}//' | tr ',' '\n' | sort -u | tr '\n' ' ')"
  echo "cublas: ${cublas:-none} ($([ "$with_cublas" = 1 ] && echo bundled || echo 'from the GPU machine'))"
  echo "nccl: $nccl_note"
  # The e2e test binary reads tests/data and models/ under the source tree it was built from;
  # gpu_check.sh links this path to its own checkout when it does not exist.
  echo "source dir: $root"
  echo "build dir: $build"
  echo "binaries:"
  (cd "$out/bin" && ls -1 | sed 's/^/  /')
  echo "libraries:"
  (cd "$out/lib" && ls -1 | sed 's/^/  /')
} >"$out/MANIFEST"
# The same as one file, for copying where a directory of 100 MiB is awkward.
tar -cf - -C "$(dirname "$out")" "$(basename "$out")" | gzip -9 >"$out.tar.gz"
bytes=$(stat -c %s "$out.tar.gz")
echo "gpu_bundle: $(du -sh "$out" | cut -f1) in $out ($(ls "$out/bin" | wc -l) binaries," \
  "$(ls "$out/lib" | wc -l) libraries); $(awk -v b="$bytes" 'BEGIN {printf "%.1f MiB", b / 1048576}') as $out.tar.gz"
if [ "$bytes" -gt $((max_bundle_mib << 20)) ]; then
  echo "gpu_bundle: warning: $out.tar.gz is over $max_bundle_mib MiB (built for CUDA" \
    "architectures $(sed -n 's/^cuda architectures: //p' "$out/MANIFEST")); a tree configured" \
    "with LOOM_GPU_CUDA_ARCHITECTURES=90-real is smaller" >&2
fi
