#!/usr/bin/env bash
# Builds if needed (installing packages through setup.sh) and runs the whole test suite with ctest.
# Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
BUILD_DIR="${TOKCOM_BUILD_DIR:-build}"
cd "$BUILD_DIR"
# setup.sh has installed every dependency: a test that would skip for want of one fails instead.
export TOKCOM_REQUIRE_DEPS="${TOKCOM_REQUIRE_DEPS:-1}"
ctest --output-on-failure --timeout 600 -j "${TOKCOM_TEST_JOBS:-2}" "$@"
