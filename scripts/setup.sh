#!/usr/bin/env bash
# Installs every Debian package tokcom needs, then configures and builds (Release) into build/.
# Idempotent: packages already present are skipped and the build is incremental.
# Works as root (no sudo needed) and as a user with sudo.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  build-essential cmake ninja-build pkg-config git ccache
  libtorch-dev libopenblas0-openmp libgloo-dev
  libcli11-dev libyaml-cpp-dev nlohmann-json3-dev libspdlog-dev libfmt-dev
  libturbojpeg0-dev libpng-dev libwebp-dev libavif-dev libarchive-dev libssl-dev openssl zlib1g-dev
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler libcpp-httplib-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  dataset-fashion-mnist gnuplot-nox
  python3-torch python3-torchvision python3-numpy python3-pil python3-prometheus-client
  chromium  # the live page's browser test (tests/test_browser.cpp) and its screenshot
)

say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${#missing[@]} Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  say "all ${#PACKAGES[@]} Debian packages already installed"
fi

BUILD_DIR="${TOKCOM_BUILD_DIR:-build}"
GEN=()
command -v ninja >/dev/null && GEN=(-G Ninja)
if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
  say "configuring $BUILD_DIR (Release)"
  cmake -S . -B "$BUILD_DIR" "${GEN[@]}" -DCMAKE_BUILD_TYPE=Release
fi
JOBS="${TOKCOM_JOBS:-$(nproc)}"
say "building with $JOBS jobs (first build takes a few minutes: LibTorch headers are heavy)"
cmake --build "$BUILD_DIR" -j "$JOBS"
say "done: $BUILD_DIR/tokcom --help"
