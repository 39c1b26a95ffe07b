#!/usr/bin/env bash
# Builds the libFuzzer targets (clang-14, ASan + UBSan) in build-fuzz/ and runs each one.
#   scripts/fuzz.sh                 # every target, FUZZ_RUNS executions each (default 1,000,000)
#   scripts/fuzz.sh payload 200000  # one target, N executions
# Targets: payload (a network request → parse → validation, net/wire.h), safetensors
# (parse_safetensors), config (Config::from_yaml + typed reads). Seed corpora: fuzz/corpus/<target>;
# new interesting inputs go to build-fuzz/corpus/<target>; a crash leaves build-fuzz/crash-* (turn it
# into a regression test). Not part of the test command (it needs clang and takes minutes).
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(clang-14 libclang-rt-14-dev libfuzzer-14-dev libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev
          protobuf-compiler libtorch-dev libyaml-cpp-dev libfmt-dev libspdlog-dev nlohmann-json3-dev)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

OUT=build-fuzz
mkdir -p "$OUT/proto" "$OUT/obj"
[ "$OUT/proto/edge.pb.cc" -nt proto/edge.proto ] || protoc -I proto --cpp_out="$OUT/proto" proto/edge.proto
CXX=clang++-14
SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
CXXFLAGS=(-std=c++17 -O1 -g $SAN -fsanitize=fuzzer-no-link -D_GLIBCXX_USE_CXX11_ABI=1
          -DTOKCOM_SOURCE_DIR="\"$PWD\"" -Isrc -I"$OUT/proto" -I"$OUT/generated"
          -isystem /usr/include/torch/csrc/api/include -w)
mkdir -p "$OUT/generated/tokcom/core"
sed -e 's/@TOKCOM_VERSION@/fuzz/' -e 's/@TOKCOM_GIT_HASH@/fuzz/' -e 's/@PROJECT_VERSION@/fuzz/' \
  src/tokcom/core/version.h.in > "$OUT/generated/tokcom/core/version.h"
SOURCES=(src/tokcom/net/wire.cpp src/tokcom/comm/payload.cpp src/tokcom/comm/zeta.cpp src/tokcom/core/check.cpp
         src/tokcom/core/safetensors.cpp src/tokcom/core/atomic_file.cpp src/tokcom/core/config.cpp
         src/tokcom/core/text.cpp "$OUT/proto/edge.pb.cc")
objects=()
for s in "${SOURCES[@]}"; do
  o="$OUT/obj/$(basename "${s%.*}").o"
  if [ ! -f "$o" ] || [ "$s" -nt "$o" ]; then
    echo "[fuzz] compiling $s"
    $CXX "${CXXFLAGS[@]}" -c "$s" -o "$o"
  fi
  objects+=("$o")
done
# grpc++: wire.cpp names grpc::Version() in its version-mismatch message.
LIBS=(-ltorch -ltorch_cpu -lc10 -lprotobuf -lgrpc++ -lyaml-cpp -lfmt -lspdlog -lpthread)
build_target() {
  local t=$1
  local stale=0 f
  for f in "fuzz/fuzz_$t.cpp" "${objects[@]}"; do [ "$f" -nt "$OUT/fuzz_$t" ] && stale=1; done
  if [ ! -f "$OUT/fuzz_$t" ] || [ $stale -eq 1 ]; then
    echo "[fuzz] linking fuzz_$t"
    $CXX "${CXXFLAGS[@]}" -fsanitize=fuzzer "fuzz/fuzz_$t.cpp" "${objects[@]}" "${LIBS[@]}" -o "$OUT/fuzz_$t"
  fi
}
run_target() {
  local t=$1 runs=$2
  mkdir -p "$OUT/corpus/$t"
  echo "[fuzz] running fuzz_$t for $runs executions"
  # detect_leaks=0: LibTorch's and protobuf's process-lifetime singletons are not leaks of ours.
  ASAN_OPTIONS=detect_leaks=0 "$OUT/fuzz_$t" -runs="$runs" -max_len=65536 -rss_limit_mb=4096 \
    -artifact_prefix="$OUT/crash-$t-" "$OUT/corpus/$t" "fuzz/corpus/$t" 2>&1 | tee "$OUT/fuzz_$t.log" | \
    grep -E "^#[0-9]+ *(DONE|pulse)|ERROR|SUMMARY|crash" || true
  tail -n 3 "$OUT/fuzz_$t.log"
}
TARGETS=(payload safetensors config)
if [ $# -ge 1 ]; then TARGETS=("$1"); fi
RUNS="${2:-${FUZZ_RUNS:-1000000}}"
for t in "${TARGETS[@]}"; do build_target "$t"; done
for t in "${TARGETS[@]}"; do run_target "$t" "$RUNS"; done
