#!/usr/bin/env bash
# Builds (via setup.sh, idempotent) and runs every test with ctest.
# A run with zero tests fails (--no-tests=error). GPU cases skip without a GPU.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${LAWCAT_BUILD_DIR:-$ROOT/build}"
"$ROOT/scripts/setup.sh"
cd "$BUILD_DIR"
ctest --no-tests=error --output-on-failure -j "${LAWCAT_TEST_JOBS:-1}" "$@"
