#!/usr/bin/env bash
# Builds (via setup.sh, idempotent) and runs every test with ctest.
# A run with zero tests fails (--no-tests=error). GPU cases skip without a GPU.
#
# Usage: scripts/test.sh [--sanitize] [ctest args...]
#   --sanitize   the CPU suite under AddressSanitizer + UndefinedBehaviorSanitizer, in its own
#                build directory ($LAWCAT_ASAN_BUILD_DIR, default build-asan; RelWithDebInfo,
#                -fsanitize=address,undefined, LAWCAT_WITH_CUDA=OFF). Any report fails the test
#                that triggered it (halt_on_error). LibTorch itself is not instrumented; leaks
#                inside it are suppressed by scripts/lsan.supp (listed, never hidden, in the
#                report files of build-asan/sanitizer-reports/, printed and counted after ctest).
# Environment: LAWCAT_BUILD_JOBS (default: nproc), LAWCAT_BUILD_LOCK (a file: each target is
#   built under `flock` on it, so builds by several people on one machine never overlap).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SANITIZE=0
if [[ "${1:-}" == "--sanitize" ]]; then SANITIZE=1; shift; fi
JOBS="${LAWCAT_BUILD_JOBS:-$(nproc)}"

if ((!SANITIZE)); then
  BUILD_DIR="${LAWCAT_BUILD_DIR:-$ROOT/build}"
  "$ROOT/scripts/setup.sh"
  cd "$BUILD_DIR"
  ctest --no-tests=error --output-on-failure -j "${LAWCAT_TEST_JOBS:-1}" "$@"
  exit
fi

BUILD_DIR="${LAWCAT_ASAN_BUILD_DIR:-$ROOT/build-asan}"
# vptr is left out: LibTorch's classes are not instrumented and their typeinfo crosses
# shared-library boundaries, which gives false "dynamic type" reports.
SAN="-fsanitize=address,undefined -fno-sanitize=vptr -fno-omit-frame-pointer"
if [[ ! -f "$BUILD_DIR/build.ninja" ]]; then
  LAWCAT_BUILD_DIR="$BUILD_DIR" "$ROOT/scripts/setup.sh" --no-build \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLAWCAT_WITH_CUDA=OFF \
    "-DCMAKE_CXX_FLAGS=$SAN" "-DCMAKE_C_FLAGS=$SAN" \
    "-DCMAKE_EXE_LINKER_FLAGS=-fsanitize=address,undefined" \
    "-DCMAKE_SHARED_LINKER_FLAGS=-fsanitize=address,undefined"
fi
build() {
  if [[ -n "${LAWCAT_BUILD_LOCK:-}" ]]; then
    flock "$LAWCAT_BUILD_LOCK" cmake --build "$BUILD_DIR" -j "$JOBS" --target "$@"
  else
    cmake --build "$BUILD_DIR" -j "$JOBS" --target "$@"
  fi
}
# With a lock, objects are built a few at a time so that others' builds get turns.
if [[ -n "${LAWCAT_BUILD_LOCK:-}" ]]; then
  mapfile -t objs < <(ninja -C "$BUILD_DIR" -t targets all | sed -n 's/^\([^:]*\.o\): .*/\1/p')
  for ((i = 0; i < ${#objs[@]}; i += 2 * JOBS)); do build "${objs[@]:i:2*JOBS}"; done
fi
build all
cd "$BUILD_DIR"
# Reports go to files (log_path), one per process that printed one, so that a report in a
# child process (the `lawcat` CLI that tests/train and tests/repro run, whose exit status a
# test may expect to be non-zero anyway) is not lost; they are printed and counted below.
REPORTS="$BUILD_DIR/sanitizer-reports"
rm -rf "$REPORTS" && mkdir -p "$REPORTS"
export ASAN_OPTIONS="${ASAN_OPTIONS:-halt_on_error=1:detect_leaks=1:abort_on_error=0:strict_string_checks=1:detect_stack_use_after_return=0:log_path=$REPORTS/report}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1:log_path=$REPORTS/report}"
export LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$ROOT/scripts/lsan.supp:print_suppressions=1}"
# ASan makes the CPU tests 2-4x slower; the fuzz entries have their own sanitizers.
rc=0
ctest --no-tests=error --output-on-failure -j "${LAWCAT_TEST_JOBS:-1}" -LE fuzz --timeout 3600 "$@" || rc=$?
# A file that only lists suppressed leaks ("Suppressions used") is not a finding.
mapfile -t found < <(grep -lE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$REPORTS"/* 2>/dev/null || true)
for f in "${found[@]}"; do echo "==== $f"; cat "$f"; done
echo "sanitizers: ${#found[@]} report file(s) with findings, $(ls "$REPORTS" | wc -l) in all, in $REPORTS"
((${#found[@]} == 0)) || rc=1
exit "$rc"
