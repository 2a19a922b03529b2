#!/usr/bin/env bash
# Build, test and benchmark lawcat's CUDA kernels on the GPU machine, in one call.
# Logs and JSON go to $OUT (default ./out). Stages (any subset, in this order):
#   build     configure build-gpu (Ninja, Release, the machine's torch) and build lawcat, test_cuda, test_ops
#   test      test_cuda (all [cuda] cases) and test_ops
#   sanitize  compute-sanitizer memcheck + racecheck on the small [sanitize] cases
#   bench     lawcat bench attention (both shapes, T = 1K..64K) -> $OUT/bench.json
#   quick     a short bench (T = 1K, 16K, fwd + f+b) -> $OUT/bench_quick.json
#   segexp    GLA fwd/bwd at T = 16K for LAWCAT_GLA_CTAS_PER_SM = 1, 2, 4, 8 (segment plan)
#   profile   Nsight Compute (full set, source counters), T = 16K: kernels matching NCU_REGEX
#             (default: the GLA / prologue kernels) of the NCU_SHAPE (default 1B) bench, NCU_COUNT launches
# Each stage is time-limited (STAGE_TIMEOUT, seconds) so the call ends inside its lease.
# Usage: scripts/gpu_run.sh build test sanitize bench
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
FINAL_OUT="${OUT:-$ROOT/out}"
OUT="$FINAL_OUT/run"   # everything lands here; packed into $FINAL_OUT/logs.tgz at exit (file-count limit)
mkdir -p "$OUT"
pack() { tar czf "$FINAL_OUT/logs.tgz" -C "$OUT" . 2>/dev/null; cp "$OUT"/*.json "$FINAL_OUT"/ 2>/dev/null; }
trap pack EXIT
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
if has segexp; then
  for f in 1 2 4 8; do
    stamp "segexp ctas/SM=$f"
    LAWCAT_GLA_CTAS_PER_SM=$f timeout 120 $BUILD/lawcat bench attention --seqlens 16384 --no-sdpa --fwd-only \
      --breakdown --reps 10 --warmup 2 > "$OUT/segexp_$f.log" 2>&1
    grep -E "parts|^ +(1B|7B)" "$OUT/segexp_$f.log"
  done
fi
if has profile; then
  stamp "ncu"
  timeout "${NCU_TIMEOUT:-200}" ncu --clock-control none -k regex:"${NCU_REGEX:-gla_|prologue}" --launch-count "${NCU_COUNT:-14}" \
    --set full --import-source yes -f -o "$OUT/prof" \
    $BUILD/lawcat bench attention --shapes "${NCU_SHAPE:-1B}" --seqlens 16384 --reps 1 --warmup 0 --no-sdpa \
    > "$OUT/ncu_run.log" 2>&1
  stamp "ncu rc=$?"
  ncu -i "$OUT/prof.ncu-rep" --page details > "$OUT/ncu_details.txt" 2>&1
  ncu -i "$OUT/prof.ncu-rep" --page source --csv --print-source cuda > "$OUT/ncu_source_cuda.csv" 2>&1 || true
  rm -f "$OUT/prof.ncu-rep"
  grep -E "^  [a-z_:<>, ]*(gla_|prologue|lawcat_)|Duration|Registers Per Thread|Achieved Occupancy|Compute \(SM\) Throughput|DRAM Throughput" \
    "$OUT/ncu_details.txt" | head -120
fi
# failures at the end (the reply keeps the tail of the output)
for f in test_cuda sanitize_memcheck sanitize_racecheck; do
  [[ -f "$OUT/$f.log" ]] && grep -E "FAILED|REQUIRE|CHECK\(|with expansion|rel err|ERROR SUMMARY|Invalid|Race" "$OUT/$f.log" | head -60
done
stamp "done status=$status"
exit $status
