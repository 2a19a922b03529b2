#!/usr/bin/env bash
# Model-level GPU throughput in one device call: build (lawcat + the named test
# binaries), GPU tests of the inference paths, `bench prefill` (Llama-3.2-1B shape,
# random weights) with kernel profiles, `bench train` (B 8 x T 1024) with profiles.
# Logs to $OUT. Stages by argument: build, crash (backtraces of test_io / test_train
# under cuda-gdb), tests, prefill, prefill-ab (LAWCAT with the fused prefill off),
# train. Needs .devdeps/include/CLI (CLI11) and .devdata (shared data) carried.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
OUT="${OUT:-$ROOT/out}"
L=/tmp/gpu_e2e  # all logs; the few files worth fetching are copied to $OUT at the end (<= 8 files)
mkdir -p "$OUT" "$L"
BUILD=build-gpu
T0=$(date +%s)
stamp() { echo "[gpu_e2e +$(( $(date +%s) - T0 ))s] $*" | tee -a "$L/stamps"; }
has() { [[ " $STAGES " == *" $1 "* ]]; }
STAGES="${*:-build tests prefill train}"
export LAWCAT_SHARED_DATA="$ROOT/.devdata" TORCH_CUDA_ARCH_LIST=9.0
nvidia-smi --query-gpu=name,memory.total,clocks.sm,clocks.max.sm --format=csv,noheader
if has build; then
  stamp "configure + build"
  cmake -S . -B $BUILD -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_PREFIX_PATH="$(python3 -c 'import torch.utils;print(torch.utils.cmake_prefix_path)')" \
    > "$L/configure.log" 2>&1 || { stamp "configure FAILED"; tail -30 "$L/configure.log"; exit 1; }
  timeout "${BUILD_TIMEOUT:-330}" cmake --build $BUILD -j16 --target lawcat ${E2E_TESTS:-test_eval test_io test_train} \
    -- -k 0 > "$L/build.log" 2>&1 || { stamp "build FAILED"; grep -E "error|Error" "$L/build.log" | head -30; }
  stamp "built"
fi
crash_bt() {  # backtraces under cuda-gdb (no gdb on the device), on cores 12-15
  for spec in "test_io|${E2E_IO_CASE:-}" "test_train|${E2E_TRAIN_CASE:-}"; do
    bin=${spec%%|*} tc=${spec#*|}
    [[ -x $BUILD/tests/$bin ]] || continue
    echo "== cuda-gdb $bin '$tc'"
    local args=("$BUILD/tests/$bin")
    [[ -n "$tc" ]] && args+=("$tc")
    timeout "${GDB_TIMEOUT:-170}" taskset -c 12-15 cuda-gdb -q -batch -ex "set pagination off" -ex run -ex bt \
      -ex "info sharedlibrary" --args "${args[@]}" > "$L/gdb_$bin.log" 2>&1
    echo "rc=$?"; grep -E "^#|SIG|signal|passed|failed|test cases" "$L/gdb_$bin.log" | head -30
  done
}
if has crash; then
  stamp "backtraces in the background"
  crash_bt > "$L/crash.log" 2>&1 &
  CRASH_PID=$!
fi
if has tests && [[ -x $BUILD/tests/test_eval ]]; then
  stamp "test_eval [cuda]"
  timeout 120 $BUILD/tests/test_eval "[cuda]" > "$L/test_eval_cuda.log" 2>&1; stamp "rc=$?"
  tail -4 "$L/test_eval_cuda.log"
fi
B=$BUILD/lawcat
if has prefill; then
  stamp "bench prefill"
  timeout "${PREFILL_TIMEOUT:-200}" $B bench prefill --config configs/llama3.2-1b.config.json --device cuda \
    --profile "${PROFILE_LENGTHS:-4096,65536}" --json "$L/bench_prefill.json" > "$L/bench_prefill.log" 2>&1
  stamp "rc=$?"; tail -12 "$L/bench_prefill.log"
fi
if has prefill-ab; then
  stamp "bench prefill, LAWCAT only, fused prefill off"
  LAWCAT_NO_FUSED_PREFILL=1 timeout 120 $B bench prefill --config configs/llama3.2-1b.config.json --device cuda \
    --no-softmax --lengths 4096,16384,65536 --decode-tokens 8 > "$L/bench_prefill_ab.log" 2>&1
  stamp "rc=$?"; tail -6 "$L/bench_prefill_ab.log"
fi
if has train; then
  stamp "bench train"
  timeout "${TRAIN_TIMEOUT:-200}" $B bench train --config configs/llama3.2-1b.config.json --device cuda \
    --profile --json "$L/bench_train.json" > "$L/bench_train.log" 2>&1
  stamp "rc=$?"; grep -A6 "^mode" "$L/bench_train.log"
fi
if [[ -n "${CRASH_PID:-}" ]]; then wait "$CRASH_PID"; stamp "backtraces"; cat "$L/crash.log"; fi
for f in bench_prefill.log bench_prefill.json bench_train.log bench_train.json crash.log; do
  [[ -f $L/$f ]] && cp "$L/$f" "$OUT/"
done
cat "$L"/gdb_*.log > "$OUT/gdb.log" 2>/dev/null
cat "$L"/configure.log "$L"/test_eval_cuda.log "$L"/bench_prefill_ab.log > "$OUT/misc.log" 2>/dev/null
grep -q "build FAILED" "$L/stamps" 2>/dev/null && cp "$L/build.log" "$OUT/"
stamp "done"
