#!/usr/bin/env bash
# The CUDA check: builds tests/test_device.cpp with the layers it needs (CMake option TOKCOM_DEVICE_CHECK:
# core, model, comm) against this machine's CUDA LibTorch and runs it, so that every CUDA result is held to
# the CPU's on the same weights and inputs (ViT soft and hard paths, a training step, MobileNetV3 and its
# CNN JSCC, bf16 autocast, the JSCC code over the channels). It needs no data, no gRPC and no CLI.
#
#   scripts/cuda_check.sh [BUILD_DIR]            build (default build-cuda/) and run; exit status = the tests'
#   scripts/cuda_check.sh --fetch-debs DIR       on a Debian 12 machine with apt: download the Debian packages
#                                                of the libraries below into DIR (for a machine without them)
#
# LibTorch: $TORCH_PREFIX, else python3's torch (torch.utils.cmake_prefix_path: pip's CUDA wheels carry
# the C++ headers and CMake files). The other libraries (yaml-cpp, fmt, spdlog, nlohmann-json, GoogleTest,
# libpng, libturbojpeg, libwebp, libavif, pkg-config) come from the system, or, with DEBS=DIR, from the
# Debian packages in DIR unpacked into BUILD_DIR/deps (no root, nothing installed). The results:
# BUILD_DIR/test_device.xml (gtest's XML) and the log on stdout. TOKCOM_TEST_DEVICE (default cuda) is
# the device compared with the CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
DEB_PACKAGES=(libyaml-cpp-dev libyaml-cpp0.7 libfmt-dev libfmt9 libspdlog-dev libspdlog1.10 nlohmann-json3-dev
  libgtest-dev libpng-dev libpng16-16 libturbojpeg0-dev libturbojpeg0 libjpeg62-turbo libwebp-dev libwebp7
  libwebpmux3 libwebpdemux2 libavif-dev libavif15 libaom3 libdav1d6 libgav1-1 librav1e0 libsvtav1enc1 libyuv0
  libabsl20220623 pkgconf pkgconf-bin libpkgconf3)

if [ "${1:-}" = --fetch-debs ]; then
  dir=${2:?"--fetch-debs DIR: the folder to download the packages into"}
  mkdir -p "$dir"
  (cd "$dir" && apt-get download "${DEB_PACKAGES[@]}")
  echo "downloaded ${#DEB_PACKAGES[@]} packages into $dir ($(du -sh "$dir" | cut -f1)); run DEBS=$dir $0 on the GPU machine"
  exit 0
fi

case "${1:-}" in
  -h | --help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
  -*) echo "cuda_check: unknown option '$1': expected [BUILD_DIR] or --fetch-debs DIR (--help)" >&2; exit 2 ;;
esac
BUILD=${1:-build-cuda}
mkdir -p "$BUILD"
BUILD=$(realpath "$BUILD")
if [ -n "${TORCH_PREFIX:-}" ]; then
  torch_prefix=$TORCH_PREFIX
else
  torch_prefix=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)') ||
    { echo "cuda_check: no TORCH_PREFIX and python3 has no torch: expected one of them to give LibTorch's CMake files" >&2; exit 2; }
  python3 -c 'import torch; print("python3 torch", torch.__version__, "CUDA", torch.version.cuda, "GPU:",
    torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none")' || true
fi
prefix_path="$torch_prefix"

if [ -n "${DEBS:-}" ]; then
  ls "$DEBS"/*.deb > /dev/null 2>&1 || { echo "cuda_check: DEBS=$DEBS holds no .deb files" >&2; exit 2; }
  deps="$BUILD/deps"
  rm -rf "$deps"
  mkdir -p "$deps"
  for f in "$DEBS"/*.deb; do
    if command -v dpkg-deb > /dev/null; then
      dpkg-deb -x "$f" "$deps"
    else  # a .deb is an ar archive whose data.tar.* holds the files
      member=$(ar t "$f" | grep '^data\.tar')
      ar p "$f" "$member" | tar -x -a -f - -C "$deps" 2> /dev/null || ar p "$f" "$member" | tar -x -J -f - -C "$deps"
    fi
  done
  arch_lib="$deps/usr/lib/x86_64-linux-gnu"
  prefix_path="$deps/usr;$prefix_path"  # first: the unpacked packages win over any system copy
  export PATH="$deps/usr/bin:$PATH"
  export PKG_CONFIG_PATH="$arch_lib/pkgconfig:$deps/usr/share/pkgconfig"
  export PKG_CONFIG_SYSROOT_DIR="$deps"
  export LD_LIBRARY_PATH="$arch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  echo "cuda_check: libraries from $(ls "$DEBS"/*.deb | wc -l) Debian packages, unpacked into $deps"
fi

generator=() keep_going=(-- -k)
command -v ninja > /dev/null && generator=(-G Ninja) keep_going=(-- -k 0)
cmake -S . -B "$BUILD" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DTOKCOM_DEVICE_CHECK=ON \
  -DCMAKE_PREFIX_PATH="$prefix_path" > "$BUILD/configure.log" 2>&1 ||
  { tail -40 "$BUILD/configure.log"; echo "cuda_check: CMake configure failed (whole log: $BUILD/configure.log)" >&2; exit 1; }
grep -E "Torch|CUDA|cuDNN" "$BUILD/configure.log" | head -8 || true
cmake --build "$BUILD" -j "$(nproc)" --target test_device "${keep_going[@]}"  # every compile error at once
command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
"$BUILD/test_device" --gtest_output="xml:$BUILD/test_device.xml"
