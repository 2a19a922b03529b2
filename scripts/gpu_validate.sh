#!/usr/bin/env bash
# End-to-end check on the GPU machine in one call: full build, the whole ctest
# suite (GPU cases included), `bench prefill` on the Llama-3.2-1B shape and the
# stage-1 / stage-2 training throughput benchmark. Logs go to $OUT.
# Before the call (on the dev machine): copy ../shared/data to .devdata and
# /usr/include/CLI to .devdeps/include/CLI; carry both.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
OUT="${OUT:-$ROOT/out}"
mkdir -p "$OUT"
BUILD=build-gpu
T0=$(date +%s)
stamp() { echo "[gpu_validate +$(( $(date +%s) - T0 ))s] $*"; }
export LAWCAT_SHARED_DATA="$ROOT/.devdata"
export TORCH_CUDA_ARCH_LIST=9.0
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
if [[ ! -f $BUILD/build.ninja ]]; then
  cmake -S . -B $BUILD -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_PREFIX_PATH="$(python3 -c 'import torch.utils;print(torch.utils.cmake_prefix_path)')" \
    > "$OUT/configure.log" 2>&1 || { stamp "configure FAILED"; tail -30 "$OUT/configure.log"; exit 1; }
fi
stamp "build"
timeout "${BUILD_TIMEOUT:-360}" cmake --build $BUILD -j16 -- -k 0 > "$OUT/build.log" 2>&1 \
  || { stamp "build FAILED"; grep -E "error|Error" "$OUT/build.log" | head -30; }
stamp "ctest"
(cd $BUILD && timeout "${TEST_TIMEOUT:-200}" ctest --no-tests=error -j4 --output-on-failure -E fuzz > "$OUT/ctest.log" 2>&1)
stamp "ctest rc=$?"; grep -E "tests passed|Failed|\*\*\*|Passed" "$OUT/ctest.log" | tail -20
if [[ " $* " == *" prefill "* ]]; then
  stamp "bench prefill (Llama-3.2-1B shape, random weights)"
  timeout "${BENCH_TIMEOUT:-150}" $BUILD/lawcat bench prefill --config configs/llama3.2-1b.config.json \
    --device cuda --json "$OUT/bench_prefill.json" > "$OUT/bench_prefill.log" 2>&1
  stamp "bench prefill rc=$?"; tail -25 "$OUT/bench_prefill.log"
fi
if [[ " $* " == *" train "* && -x $BUILD/tests/test_train ]]; then
  stamp "training throughput"
  timeout "${BENCH_TIMEOUT:-150}" $BUILD/tests/test_train "[.bench]" > "$OUT/bench_train.log" 2>&1
  stamp "bench train rc=$?"; tail -25 "$OUT/bench_train.log"
fi
stamp "done"
