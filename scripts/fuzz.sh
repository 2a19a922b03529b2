#!/usr/bin/env bash
# Builds and runs lawcat's libFuzzer targets. They are compiled with clang
# (-fsanitize=fuzzer,address,undefined) from torch-free sources, apart from the
# g++/LibTorch build. Exits non-zero when a target crashes, leaks, hangs or
# fails to build; the crashing input is left under $OUT/artifacts/.
#
# Usage: scripts/fuzz.sh [--build-only] [target...]     (default: every target)
# Targets (driver tests/fuzz/fuzz_<target>.cpp; seeds tests/fuzz/corpus/<target>/;
# dictionary tests/fuzz/<target>.dict):
#   safetensors_header   io/safetensors_header.cpp (header parsing, validation, builder)
#   safetensors_index    io/safetensors_header.cpp parse_safetensors_index (sharded index)
#   hf_config            io/hf_config.cpp parse_llama_config (config.json) + round trip
#   tokenizer_json       text/ load_tokenizer: tokenizer.json + tokenizer_config.json, encode/decode
#   tokenizer_bin        text/ load_llama2c: llama2.c tokenizer.bin, encode/decode
#   llama2c_header       io/llama2c_header.cpp (llama2.c checkpoint header and size)
#   yaml_config          config/yaml.cpp parse_run_config with --set overrides + round trip
#   corpus               dataset/corpus.cpp + decompress.cpp (text, JSONL, Alpaca; .gz/.xz/.zst)
#   babi                 eval/babilong.cpp load_babi (bAbI task files)
#   state_json           train/resume_state.cpp (a checkpoint's state.json for resume)
# Environment:
#   LAWCAT_FUZZ_CXX       clang++ with libFuzzer (default: clang++-14, then clang++)
#   LAWCAT_FUZZ_SECONDS   run time per target (default 60)
#   LAWCAT_FUZZ_RUNS      stop a target after this many executions instead (0: no limit)
#   LAWCAT_FUZZ_JOBS      parallel compile jobs per target (default 2)
#   LAWCAT_FUZZ_OUT       binaries, grown corpora, crash artifacts
#                         (default: $LAWCAT_BUILD_DIR/fuzz, or build/fuzz)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${LAWCAT_FUZZ_OUT:-${LAWCAT_BUILD_DIR:-$ROOT/build}/fuzz}"
SECONDS_PER_TARGET="${LAWCAT_FUZZ_SECONDS:-60}"
RUNS="${LAWCAT_FUZZ_RUNS:-0}"
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
ALL_TARGETS=(safetensors_header safetensors_index hf_config tokenizer_json tokenizer_bin llama2c_header
             yaml_config corpus babi state_json)
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
          -I"$ROOT/src" -I"$ROOT/tests/fuzz")

# Sources per target (the fuzz driver first) and extra libraries.
S="$ROOT/src"
TOKENIZER_SRCS="$S/text/tokenizer.cpp $S/text/bpe.cpp $S/text/regex.cpp $S/text/unicode.cpp \
  $S/text/llama2c_tokenizer.cpp $S/text/sentencepiece.cpp"
sources_of() {
  local common="$S/util/error.cpp $ROOT/tests/fuzz/log_stub.cpp"
  case "$1" in
    safetensors_header|safetensors_index) echo "$S/io/safetensors_header.cpp $common" ;;
    hf_config)       echo "$S/io/hf_config.cpp $S/util/fs.cpp $common" ;;
    tokenizer_json|tokenizer_bin) echo "$TOKENIZER_SRCS $S/util/fs.cpp $common" ;;
    llama2c_header)  echo "$S/io/llama2c_header.cpp $common" ;;
    yaml_config)     echo "$S/config/yaml.cpp $S/util/fs.cpp $common" ;;
    corpus)          echo "$S/dataset/corpus.cpp $S/dataset/decompress.cpp $S/util/fs.cpp $common" ;;
    babi)            echo "$S/eval/babilong.cpp $S/eval/eval_util.cpp $TOKENIZER_SRCS $S/util/fs.cpp $common" ;;
    state_json)      echo "$S/train/resume_state.cpp $common" ;;
    *) echo "fuzz.sh: unknown target '$1' (known: ${ALL_TARGETS[*]})" >&2; return 2 ;;
  esac
}
# Feature macros the CMake build defines for lawcat_text (src/CMakeLists.txt); without
# LAWCAT_HAVE_PCRE2 every tokenizer.json is refused before it is parsed.
defines_of() {
  case "$1" in
    tokenizer_json|tokenizer_bin|babi) echo "-DLAWCAT_HAVE_PCRE2=1 -DLAWCAT_HAVE_ICU=1" ;;
  esac
}
libs_of() {
  case "$1" in
    tokenizer_json|tokenizer_bin|babi) echo "-lpcre2-8 -licuuc -ldl" ;;
    yaml_config) echo "-lyaml-cpp" ;;
    corpus) echo "-llzma -lz -lzstd" ;;
  esac
}
# Longest input (the seeds must fit: tokenizer.json files are 10-20 KB).
maxlen_of() {
  case "$1" in
    tokenizer_json) echo 32768 ;;
    tokenizer_bin|yaml_config|safetensors_index) echo 8192 ;;
    *) echo 4096 ;;
  esac
}
# Headers a target depends on: the .h beside each source, and the shared fuzz header.
headers_of() {
  local f
  for f in $(sources_of "$1"); do [[ -f "${f%.cpp}.h" ]] && echo "${f%.cpp}.h"; done
  # The config's schema is header-only: the YAML reader's behaviour changes with it.
  [[ "$1" == yaml_config ]] && echo "$S/config/schema.h"
  echo "$ROOT/tests/fuzz/fuzz_common.h"
}

build() {  # build <target>: rebuilds only when a source is newer than the binary
  local t="$1" bin="$OUT/fuzz_$1" srcs stale=0
  srcs="$ROOT/tests/fuzz/fuzz_$t.cpp $(sources_of "$t")"
  if [[ ! -x "$bin" ]]; then stale=1; else
    for f in $srcs $(headers_of "$t") "$0"; do [[ "$f" -nt "$bin" ]] && stale=1; done
  fi
  if ((stale)); then
    log "building $bin with $CXX"
    # One object per source (in parallel), then link.
    local objdir="$OUT/obj_$t" objs=() f o
    mkdir -p "$objdir"
    for f in $srcs; do
      o="$objdir/$(basename "${f%.*}").o"
      objs+=("$o")
      while (($(jobs -rp | wc -l) >= ${LAWCAT_FUZZ_JOBS:-2})); do wait -n; done
      # shellcheck disable=SC2046
      "$CXX" "${CXXFLAGS[@]}" $(defines_of "$t") -c "$f" -o "$o" &
    done
    local rc=0
    while (($(jobs -rp | wc -l) > 0)); do wait -n || rc=1; done
    ((rc == 0)) || { log "error: compiling $t failed"; return 1; }
    # shellcheck disable=SC2046
    "$CXX" "${CXXFLAGS[@]}" "${objs[@]}" $(libs_of "$t") -o "$bin.tmp"
    mv "$bin.tmp" "$bin"
  fi
}

run() {  # run <target>
  local t="$1" bin="$OUT/fuzz_$1"
  local seeds="$ROOT/tests/fuzz/corpus/$t" corpus="$OUT/corpus_$t" artifacts="$OUT/artifacts_$t/"
  local dict="$ROOT/tests/fuzz/$t.dict" dict_arg=()
  [[ -f "$dict" ]] && dict_arg=(-dict="$dict")
  mkdir -p "$corpus" "$artifacts"
  log "running $t for ${SECONDS_PER_TARGET}s (corpus $corpus, seeds $seeds)"
  # The first corpus dir collects new inputs; the seed dir in the repo is read only.
  if ! "$bin" -max_total_time="$SECONDS_PER_TARGET" -runs="${RUNS/#0/-1}" -max_len="$(maxlen_of "$t")" -timeout=10 \
       -rss_limit_mb=2048 "${dict_arg[@]}" -artifact_prefix="$artifacts" -print_final_stats=1 \
       "$corpus" "$seeds" 2>"$OUT/fuzz_$t.log"; then
    tail -n 60 "$OUT/fuzz_$t.log" >&2
    log "FAILED: $t (reproduce: $bin $artifacts<crash file>; full log $OUT/fuzz_$t.log)"
    return 1
  fi
  grep -a -E '^(Done [0-9]+ runs|stat::)' "$OUT/fuzz_$t.log" || true
  log "ok: $t"
}

rc=0
for t in "${TARGETS[@]}"; do
  sources_of "$t" >/dev/null || exit 2
  build "$t"
  if ((!BUILD_ONLY)); then run "$t" || rc=1; fi
done
exit $rc
