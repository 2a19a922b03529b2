#!/usr/bin/env bash
# Build, test and benchmark lawcat's CUDA kernels on the GPU machine, in one call.
# Logs and JSON go to $OUT (default ./out). Stages (any subset, in this order):
#   build     configure build-gpu (Ninja, Release, the machine's torch) and build lawcat, test_cuda, test_ops
#   test      test_cuda (all [cuda] cases) and test_ops
#   sanitize  compute-sanitizer memcheck + racecheck on the small [sanitize] cases
#   bench     lawcat bench attention (both shapes, T = 1K..64K) -> $OUT/bench.json
#   quick     a short bench (T = 1K, 16K, fwd + f+b) -> $OUT/bench_quick.json
# Each stage is time-limited (STAGE_TIMEOUT, seconds) so the call ends inside its lease.
# Usage: scripts/gpu_run.sh build test sanitize bench
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
OUT="${OUT:-$ROOT/out}"
mkdir -p "$OUT"
BUILD=build-gpu
T0=$(date +%s)
stamp() { echo "[gpu_run +$(( $(date +%s) - T0 ))s] $*"; }
has() { local s; for s in "${STAGES[@]}"; do [[ "$s" == "$1" ]] && return 0; done; return 1; }
STAGES=("$@")
[[ ${#STAGES[@]} -eq 0 ]] && STAGES=(build test sanitize bench)
status=0

nvidia-smi --query-gpu=name,memory.total,clocks.sm,clocks.mem --format=csv,noheader > "$OUT/gpu.txt" 2>&1
stamp "gpu: $(cat "$OUT/gpu.txt")"

if has build; then
  stamp "configure"
  export TORCH_CUDA_ARCH_LIST=9.0
  if [[ ! -f $BUILD/build.ninja ]]; then
    cmake -S . -B $BUILD -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_PREFIX_PATH="$(python3 -c 'import torch.utils;print(torch.utils.cmake_prefix_path)')" \
      > "$OUT/configure.log" 2>&1 || { stamp "configure FAILED"; tail -30 "$OUT/configure.log"; exit 1; }
  fi
  stamp "build"
  timeout "${BUILD_TIMEOUT:-420}" cmake --build $BUILD -j16 --target lawcat test_cuda > "$OUT/build.log" 2>&1 \
    || { stamp "build FAILED"; grep -E "error|Error" "$OUT/build.log" | head -40; exit 1; }
  timeout 120 cmake --build $BUILD -j16 --target test_ops >> "$OUT/build.log" 2>&1 || stamp "test_ops did not build (not ours; see build.log)"
  stamp "build done"
fi

if has test; then
  stamp "test_cuda"
  timeout "${STAGE_TIMEOUT:-240}" $BUILD/tests/test_cuda "[cuda]" --durations yes > "$OUT/test_cuda.log" 2>&1
  rc=$?; [[ $rc -ne 0 ]] && status=1
  stamp "test_cuda rc=$rc: $(grep -E '^(test cases|All tests)' "$OUT/test_cuda.log" | tail -2 | tr '\n' ' ')"
  if [[ -x $BUILD/tests/test_ops ]]; then
    timeout 120 $BUILD/tests/test_ops > "$OUT/test_ops.log" 2>&1
    stamp "test_ops rc=$?: $(grep -E '^(test cases|All tests)' "$OUT/test_ops.log" | tail -2 | tr '\n' ' ')"
  fi
fi

if has sanitize; then
  for tool in memcheck racecheck; do
    stamp "compute-sanitizer $tool"
    timeout "${STAGE_TIMEOUT:-240}" compute-sanitizer --tool $tool --error-exitcode 9 \
      $BUILD/tests/test_cuda "[sanitize]" > "$OUT/sanitize_$tool.log" 2>&1
    rc=$?; [[ $rc -ne 0 ]] && status=1
    stamp "$tool rc=$rc: $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY|test cases' "$OUT/sanitize_$tool.log" | tr '\n' ' ')"
  done
fi

if has bench; then
  stamp "bench attention"
  timeout "${BENCH_TIMEOUT:-300}" $BUILD/lawcat bench attention --breakdown --json "$OUT/bench.json" \
    > "$OUT/bench.log" 2>&1
  stamp "bench rc=$?"; cat "$OUT/bench.log"
fi
if has quick; then
  stamp "bench (quick)"
  timeout "${BENCH_TIMEOUT:-200}" $BUILD/lawcat bench attention --seqlens 1024,16384 --breakdown \
    --json "$OUT/bench_quick.json" > "$OUT/bench_quick.log" 2>&1
  stamp "bench rc=$?"; cat "$OUT/bench_quick.log"
fi
# failures at the end (the reply keeps the tail of the output)
for f in test_cuda sanitize_memcheck sanitize_racecheck; do
  [[ -f "$OUT/$f.log" ]] && grep -E "FAILED|REQUIRE|CHECK\(|with expansion|rel err|ERROR SUMMARY|Invalid|Race" "$OUT/$f.log" | head -60
done
stamp "done status=$status"
exit $status
