#!/usr/bin/env bash
# Builds if needed (installing packages through setup.sh) and runs the whole test suite with ctest,
# then, when time allows, the sanitizer subset: the fast unit tests and the fuzz corpus replays
# (ctest label `sanitize`) built with ASan + UBSan in build-asan/ (CMake option TOKCOM_SANITIZE).
# Exits non-zero on any failure, in either run. Arguments go to ctest (both runs).
#   TOKCOM_SANITIZE=1     always run the sanitizer subset
#   TOKCOM_SANITIZE=0     never
#   TOKCOM_SANITIZE=only  the sanitizer subset alone (setup.sh still runs: the Release CLI is needed)
#   unset                 run it unless ctest arguments were given or more than
#                         TOKCOM_SANITIZE_START_MIN minutes (default 45) have gone by: its cold build
#                         (a unity build: each folder's sources compiled in batches) is ~15 min of CPU
#                         (~8 min on 2 idle cores), its run ~3 min of CPU, and CI must stay under 60
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
start=$SECONDS
scripts/setup.sh
BUILD_DIR="${TOKCOM_BUILD_DIR:-build}"
SAN_DIR="${TOKCOM_SANITIZE_BUILD_DIR:-build-asan}"
SANITIZE="${TOKCOM_SANITIZE:-auto}"
JOBS="${TOKCOM_TEST_JOBS:-2}"
# setup.sh has installed every dependency: a test that would skip for want of one fails instead.
export TOKCOM_REQUIRE_DEPS="${TOKCOM_REQUIRE_DEPS:-1}"
say() { printf '\033[1m[test]\033[0m %s\n' "$*"; }

if [ "$SANITIZE" != "only" ]; then
  (cd "$BUILD_DIR" && ctest --output-on-failure --timeout 600 -j "$JOBS" "$@")
fi

elapsed_min=$(((SECONDS - start) / 60))
case "$SANITIZE" in
  0) say "sanitizer subset skipped (TOKCOM_SANITIZE=0)"; exit 0 ;;
  1 | only) ;;
  auto)
    if [ $# -gt 0 ]; then
      say "sanitizer subset skipped (ctest arguments given; TOKCOM_SANITIZE=1 runs it with them)"
      exit 0
    fi
    if [ "$elapsed_min" -gt "${TOKCOM_SANITIZE_START_MIN:-45}" ]; then
      say "sanitizer subset skipped: ${elapsed_min} min gone, more than TOKCOM_SANITIZE_START_MIN=${TOKCOM_SANITIZE_START_MIN:-45} (TOKCOM_SANITIZE=1 forces it)"
      exit 0
    fi ;;
  *) echo "TOKCOM_SANITIZE must be 0, 1, only or unset (got '$SANITIZE')" >&2; exit 2 ;;
esac

say "sanitizer subset (ASan + UBSan) in $SAN_DIR after ${elapsed_min} min"
san_start=$SECONDS
GEN=()
command -v ninja >/dev/null && GEN=(-G Ninja)
if [ ! -f "$SAN_DIR/CMakeCache.txt" ]; then
  # Its tests that still spawn the CLI run the Release build's (the CLI is not built here). A unity
  # build: LibTorch's templates are instantiated once per batch of files instead of once per file, which halves
  # this tree's cold build (28 → 15 min of CPU); the Release tree stays one object per file, so that a
  # file that lacks an include of its own still fails there.
  cmake -S . -B "$SAN_DIR" "${GEN[@]}" -DCMAKE_BUILD_TYPE=Release -DTOKCOM_SANITIZE=ON -DTOKCOM_BUILD_BENCH=OFF \
    -DCMAKE_UNITY_BUILD=ON -DTOKCOM_TEST_CLI="$ROOT/$BUILD_DIR/tokcom"
fi
cmake --build "$SAN_DIR" -j "${TOKCOM_JOBS:-$(nproc)}" --target sanitize_subset
built_s=$((SECONDS - san_start))
(cd "$SAN_DIR" && ctest -L sanitize --output-on-failure --timeout 600 -j "$JOBS" "$@")
say "sanitizer subset passed (build ${built_s} s, tests $((SECONDS - san_start - built_s)) s)"
