#!/usr/bin/env bash
# Builds and runs lawcat's libFuzzer targets. They are compiled with clang
# (-fsanitize=fuzzer,address,undefined) from torch-free sources, apart from the
# g++/LibTorch build. Exits non-zero when a target crashes, leaks, hangs or
# fails to build; the crashing input is left under $OUT/artifacts/.
#
# Usage: scripts/fuzz.sh [--build-only] [target...]     (default: every target)
# Targets:
#   safetensors_header   io/safetensors_header.cpp (header parsing, validation, builder)
# Environment:
#   LAWCAT_FUZZ_CXX       clang++ with libFuzzer (default: clang++-14, then clang++)
#   LAWCAT_FUZZ_SECONDS   run time per target (default 60)
#   LAWCAT_FUZZ_OUT       binaries, grown corpora, crash artifacts
#                         (default: $LAWCAT_BUILD_DIR/fuzz, or build/fuzz)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${LAWCAT_FUZZ_OUT:-${LAWCAT_BUILD_DIR:-$ROOT/build}/fuzz}"
SECONDS_PER_TARGET="${LAWCAT_FUZZ_SECONDS:-60}"
BUILD_ONLY=0
TARGETS=()
for arg in "$@"; do
  case "$arg" in
    --build-only) BUILD_ONLY=1 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    -*) echo "fuzz.sh: unknown option '$arg'" >&2; exit 2 ;;
    *) TARGETS+=("$arg") ;;
  esac
done
ALL_TARGETS=(safetensors_header)
((${#TARGETS[@]})) || TARGETS=("${ALL_TARGETS[@]}")
log() { echo "[fuzz] $*"; }

CXX="${LAWCAT_FUZZ_CXX:-}"
if [[ -z "$CXX" ]]; then
  for c in clang++-14 clang++; do
    if command -v "$c" >/dev/null; then CXX="$c"; break; fi
  done
fi
if [[ -z "$CXX" ]]; then
  log "error: no clang++ found (Debian: apt-get install clang-14 libclang-rt-14-dev)"; exit 1
fi
mkdir -p "$OUT"
CXXFLAGS=(-std=c++17 -g -O1 -fno-omit-frame-pointer
          -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
          -I"$ROOT/src")

# Sources per target (the fuzz driver first).
sources_of() {
  case "$1" in
    safetensors_header)
      echo "$ROOT/tests/fuzz/fuzz_safetensors_header.cpp $ROOT/src/io/safetensors_header.cpp" \
           "$ROOT/src/util/error.cpp" ;;
    *) echo "fuzz.sh: unknown target '$1' (known: ${ALL_TARGETS[*]})" >&2; return 2 ;;
  esac
}
headers_of() {
  case "$1" in
    safetensors_header) echo "$ROOT/src/io/safetensors_header.h $ROOT/src/util/error.h" ;;
  esac
}

build() {  # build <target>: rebuilds only when a source is newer than the binary
  local t="$1" bin="$OUT/fuzz_$1" srcs stale=0
  srcs="$(sources_of "$t")"
  if [[ ! -x "$bin" ]]; then stale=1; else
    for f in $srcs $(headers_of "$t") "$0"; do [[ "$f" -nt "$bin" ]] && stale=1; done
  fi
  if ((stale)); then
    log "building $bin with $CXX"
    # shellcheck disable=SC2086
    "$CXX" "${CXXFLAGS[@]}" $srcs -o "$bin.tmp"
    mv "$bin.tmp" "$bin"
  fi
}

run() {  # run <target>
  local t="$1" bin="$OUT/fuzz_$1"
  local seeds="$ROOT/tests/fuzz/corpus" corpus="$OUT/corpus_$t" artifacts="$OUT/artifacts_$t/"
  local dict="$ROOT/tests/fuzz/safetensors.dict"
  mkdir -p "$corpus" "$artifacts"
  log "running $t for ${SECONDS_PER_TARGET}s (corpus $corpus, seeds $seeds)"
  # The first corpus dir collects new inputs; the seed dir in the repo is read only.
  if ! "$bin" -max_total_time="$SECONDS_PER_TARGET" -max_len=4096 -timeout=10 \
       -rss_limit_mb=2048 -dict="$dict" -artifact_prefix="$artifacts" -print_final_stats=1 \
       "$corpus" "$seeds" 2>"$OUT/fuzz_$t.log"; then
    tail -n 60 "$OUT/fuzz_$t.log" >&2
    log "FAILED: $t (reproduce: $bin $artifacts<crash file>; full log $OUT/fuzz_$t.log)"
    return 1
  fi
  grep -E '^(Done [0-9]+ runs|stat::new_units_added)' "$OUT/fuzz_$t.log" || true
  log "ok: $t"
}

rc=0
for t in "${TARGETS[@]}"; do
  sources_of "$t" >/dev/null || exit 2
  build "$t"
  if ((!BUILD_ONLY)); then run "$t" || rc=1; fi
done
exit $rc
