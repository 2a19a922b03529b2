#!/usr/bin/env bash
# lawcat on the GPU machine, one device call per batch of stages:
#   scripts/gpu.sh [--dry-run] STAGE...        scripts/gpu.sh help        (GPU_DRY_RUN=1: --dry-run)
# Stages run in the order of this table, whatever the order given:
#   build       configure $BUILD (Ninja, Release, the machine's torch) and build lawcat, test_cuda
#               (fatal on failure), then test_ops (not fatal)
#   e2e-build   configure and build lawcat + $E2E_TESTS (default test_eval test_io test_train), -k 0
#   build-all   configure (if needed) and build every target, -k 0 (what `validate` runs on)
#   dp-build    configure (NCCL found through the machine's python3) and build lawcat + test_train
#   test        test_cuda (all [cuda] cases) and test_ops
#   sanitize    compute-sanitizer memcheck + racecheck on the small [sanitize] cases
#   bench       lawcat bench attention (both shapes, T = 1K..64K) -> bench.json
#   quick       a short bench (T = 1K, 16K, fwd + f+b) -> bench_quick.json
#   segexp      GLA fwd/bwd at T = 16K for LAWCAT_GLA_CTAS_PER_SM = 1, 2, 4, 8 (segment plan)
#   profile     Nsight Compute (full set, source counters), T = 16K: kernels matching NCU_REGEX
#               (default: the GLA / prologue kernels) of the NCU_SHAPE (default 1B) bench,
#               NCU_COUNT launches (default 14), NCU_TIMEOUT
#   crash       backtraces of test_io / test_train under cuda-gdb (E2E_IO_CASE, E2E_TRAIN_CASE,
#               GDB_TIMEOUT), in the background while the later stages run
#   eval-cuda   test_eval "[cuda]" (the GPU tests of the inference paths)
#   prefill     bench prefill (Llama-3.2-1B shape, random weights) with kernel profiles at
#               PROFILE_LENGTHS (default 4096,65536) -> bench_prefill.json; PREFILL_TIMEOUT
#   prefill-ab  bench prefill, LAWCAT only, with the fused prefill off (LAWCAT_NO_FUSED_PREFILL=1)
#   train       bench train (B 8 x T 1024) with profiles -> bench_train.json; TRAIN_TIMEOUT
#   validate    build-all, then the whole ctest suite but fuzz (GPU cases included); TEST_TIMEOUT
#   validate-prefill  bench prefill without profiles -> bench_prefill.json (BENCH_TIMEOUT 150)
#   validate-train    bench train-parts on stories260K (CPU: where a training step's time goes;
#               BENCH_TIMEOUT 150)
#   dp-test     test_train "[distributed]" (store, 2-GPU NCCL and backend-choice tests)
#   smoke       `lawcat distill` as 2 ranks on stories260K (30 + 20 steps, 1 sequence per rank),
#               then the same global batch in one process; both runs' last validation losses.
#               DP_DEVICE=cpu rehearses it on a CPU machine with the store backend.
#   ab          A/B timing: build (as `build`) this tree and the baseline tree in build-ab-src/
#               (git-ignored; `git archive <commit> | tar -x -C build-ab-src` here, carried),
#               the fused-core tests on the new build, then `bench attention` new / base
#               alternately, two rounds; SEQS (default 16384)
#   harness     the torch-free fused-forward harness (tests/cuda/fused_fwd_harness.cu, nvcc
#               only): HARNESS_MODE check|bench|all (default all), HARNESS_NVCC_FLAGS
# Groups: e2e = e2e-build eval-cuda prefill train; dp = dp-build dp-test smoke (a 2-GPU kind,
# nvidia-h200-x2 / nvidia-h100-x2).
# Environment: OUT (default ./out), BUILD (default build-gpu), STAGE_TIMEOUT (test, sanitize;
# default 240), BUILD_TIMEOUT, BENCH_TIMEOUT, TORCH_CUDA_ARCH_LIST (default 9.0), DP_DEVICE,
# LAWCAT_SHARED_DATA (default .devdata when present: carry .devdata and .devdeps for the
# stages that read data or need CLI11).
# Output: every log in $GPU_LOGS (default /tmp/lawcat-gpu), packed into $OUT/logs.tgz at exit;
# the JSON results, smoke_summary.txt and (after a failed build) build.log are also copied to
# $OUT (at most 7 files besides logs.tgz: the device returns 8).
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

ORDER=(build e2e-build build-all dp-build test sanitize bench quick segexp profile crash eval-cuda
       prefill prefill-ab train validate validate-prefill validate-train dp-test smoke ab harness)
usage() { sed -n '2,/^set -uo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }

DRY="${GPU_DRY_RUN:-0}"   # or --dry-run: list the stages and settings, run nothing
REQ=()
for a in "$@"; do
  case "$a" in
    help|-h|--help) usage; exit 0 ;;
    --dry-run|-n) DRY=1 ;;
    e2e) REQ+=(e2e-build eval-cuda prefill train) ;;
    dp) REQ+=(dp-build dp-test smoke) ;;
    *) if [[ " ${ORDER[*]} " == *" $a "* ]]; then REQ+=("$a"); else
         echo "gpu.sh: unknown stage '$a' (scripts/gpu.sh help lists them)" >&2; exit 2; fi ;;
  esac
done
[[ ${#REQ[@]} -eq 0 ]] && { usage >&2; exit 2; }
STAGES=()  # the requested stages in table order, each once
for s in "${ORDER[@]}"; do [[ " ${REQ[*]} " == *" $s "* ]] && STAGES+=("$s"); done
has() { [[ " ${STAGES[*]} " == *" $1 "* ]]; }

# ---- shared prologue: paths, output, packing, stamps, the one build function ----
OUT="${OUT:-$ROOT/out}"
L="${GPU_LOGS:-/tmp/lawcat-gpu}"   # all logs; packed into $OUT/logs.tgz at exit
BUILD="${BUILD:-build-gpu}"
B="$BUILD/lawcat"
DP_DEVICE="${DP_DEVICE:-cuda}"
export TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-9.0}"
[[ -z "${LAWCAT_SHARED_DATA:-}" && -d "$ROOT/.devdata" ]] && export LAWCAT_SHARED_DATA="$ROOT/.devdata"
if [[ $DRY -eq 1 ]]; then
  echo "stages: ${STAGES[*]}"
  echo "OUT=$OUT logs=$L BUILD=$BUILD TORCH_CUDA_ARCH_LIST=$TORCH_CUDA_ARCH_LIST DP_DEVICE=$DP_DEVICE"
  echo "LAWCAT_SHARED_DATA=${LAWCAT_SHARED_DATA:-} STAGE_TIMEOUT=${STAGE_TIMEOUT:-240} SEQS=${SEQS:-16384}"
  has harness && echo "HARNESS_MODE=${HARNESS_MODE:-all} HARNESS_NVCC_FLAGS=${HARNESS_NVCC_FLAGS:-}"
  exit 0
fi
rm -rf "$L"; mkdir -p "$OUT" "$L"
T0=$(date +%s)
stamp() { echo "[gpu +$(( $(date +%s) - T0 ))s] $*" | tee -a "$L/stamps.log"; }
status=0
BUILD_FAILED=0
# shellcheck disable=SC2317  # called by the EXIT trap
pack() {
  tar czf "$OUT/logs.tgz" -C "$L" . 2>/dev/null
  local f n=0
  for f in "$L/smoke_summary.txt" "$L/build.log" "$L"/*.json; do
    [[ -f $f ]] || continue
    [[ $f == "$L/build.log" && $BUILD_FAILED -eq 0 ]] && continue
    (( n < 7 )) || break
    cp "$f" "$OUT/" && n=$((n + 1))
  done
}
trap pack EXIT

# configure_tree SRC BUILDDIR always|if-missing [extra cmake args...] -> log $L/configure[_<tag>].log
configure_tree() {
  local src=$1 dir=$2 when=$3 log=$L/configure${CONFIGURE_TAG:-}.log; shift 3
  [[ $dir == /* ]] || dir=$src/$dir
  [[ $when == if-missing && -f $dir/build.ninja ]] && return 0
  local py; py="$(command -v python3)"
  cmake -S "$src" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DPython3_EXECUTABLE="$py" \
    -DCMAKE_PREFIX_PATH="$("$py" -c 'import torch.utils;print(torch.utils.cmake_prefix_path)')" "$@" \
    > "$log" 2>&1 || { stamp "configure FAILED ($dir)"; tail -30 "$log"; return 1; }
}
# build_targets TIMEOUT fatal|keep-going LOG TARGET... (no target: all). fatal: exit 1 on failure.
build_targets() {
  local to=$1 mode=$2 log=$3; shift 3
  local args=(--build "$BUILD" -j "$(nproc)")
  [[ $# -gt 0 ]] && args+=(--target "$@")
  [[ $mode == keep-going ]] && args+=(-- -k 0)
  timeout "$to" cmake "${args[@]}" >> "$log" 2>&1 && return 0
  local rc=$?
  BUILD_FAILED=1
  stamp "build FAILED (rc=$rc; $(basename "$log"))"; grep -E "error|Error" "$log" | head -30
  [[ $mode == fatal ]] && exit 1
  return 1
}

if command -v nvidia-smi > /dev/null; then
  nvidia-smi --query-gpu=index,name,memory.total,clocks.sm,clocks.max.sm,clocks.mem \
    --format=csv,noheader > "$L/gpu.txt" 2>&1
  stamp "gpu: $(tr '\n' ' ' < "$L/gpu.txt")"
else
  stamp "no nvidia-smi on this machine"
fi
stamp "stages: ${STAGES[*]}"

# ---- build stages ----
if has build || has ab; then   # scripts/gpu_run.sh build (ab builds this tree the same way)
  stamp "configure"
  configure_tree . "$BUILD" if-missing || exit 1
  stamp "build"
  build_targets "${BUILD_TIMEOUT:-420}" fatal "$L/build.log" lawcat test_cuda
  timeout 120 cmake --build "$BUILD" -j "$(nproc)" --target test_ops >> "$L/build.log" 2>&1 \
    || stamp "test_ops did not build (not ours; see build.log)"
  stamp "build done"
fi
if has e2e-build; then         # scripts/gpu_e2e.sh build
  stamp "configure + build"
  configure_tree . "$BUILD" always || exit 1
  # shellcheck disable=SC2086  # E2E_TESTS is a list of targets
  build_targets "${BUILD_TIMEOUT:-330}" keep-going "$L/build.log" lawcat ${E2E_TESTS:-test_eval test_io test_train}
  stamp "built"
fi
if has build-all || has validate; then   # scripts/gpu_validate.sh's build
  configure_tree . "$BUILD" if-missing || exit 1
  stamp "build"
  build_targets "${BUILD_TIMEOUT:-360}" keep-going "$L/build.log"
fi
if has dp-build; then          # scripts/gpu_dp.sh build
  stamp "configure $BUILD"
  configure_tree . "$BUILD" always || exit 1
  stamp "$(grep -E 'lawcat: (NCCL|nccl)' "$L/configure.log" | sed 's/^-- //')"
  stamp "build lawcat test_train"
  build_targets "${BUILD_TIMEOUT:-420}" fatal "$L/build.log" lawcat test_train
  stamp "built"
fi

# ---- kernels: scripts/gpu_run.sh ----
if has test; then
  stamp "test_cuda"
  timeout "${STAGE_TIMEOUT:-240}" "$BUILD/tests/test_cuda" "[cuda]" --durations yes > "$L/test_cuda.log" 2>&1
  rc=$?; [[ $rc -ne 0 ]] && status=1
  stamp "test_cuda rc=$rc: $(grep -E '^(test cases|All tests)' "$L/test_cuda.log" | tail -2 | tr '\n' ' ')"
  if [[ -x $BUILD/tests/test_ops ]]; then
    timeout 120 "$BUILD/tests/test_ops" > "$L/test_ops.log" 2>&1
    stamp "test_ops rc=$?: $(grep -E '^(test cases|All tests)' "$L/test_ops.log" | tail -2 | tr '\n' ' ')"
  fi
fi
if has sanitize; then
  for tool in memcheck racecheck; do
    stamp "compute-sanitizer $tool"
    timeout "${STAGE_TIMEOUT:-240}" compute-sanitizer --tool $tool --error-exitcode 9 \
      "$BUILD/tests/test_cuda" "[sanitize]" > "$L/sanitize_$tool.log" 2>&1
    rc=$?; [[ $rc -ne 0 ]] && status=1
    stamp "$tool rc=$rc: $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY|test cases' "$L/sanitize_$tool.log" | tr '\n' ' ')"
  done
fi
if has bench; then
  stamp "bench attention"
  timeout "${BENCH_TIMEOUT:-300}" "$B" bench attention --breakdown --json "$L/bench.json" \
    > "$L/bench.log" 2>&1
  stamp "bench rc=$?"; cat "$L/bench.log"
fi
if has quick; then
  stamp "bench (quick)"
  timeout "${BENCH_TIMEOUT:-200}" "$B" bench attention --seqlens 1024,16384 --breakdown \
    --json "$L/bench_quick.json" > "$L/bench_quick.log" 2>&1
  stamp "bench rc=$?"; cat "$L/bench_quick.log"
fi
if has segexp; then
  for f in 1 2 4 8; do
    stamp "segexp ctas/SM=$f"
    LAWCAT_GLA_CTAS_PER_SM=$f timeout 120 "$B" bench attention --seqlens 16384 --no-sdpa --fwd-only \
      --breakdown --reps 10 --warmup 2 > "$L/segexp_$f.log" 2>&1
    grep -E "parts|^ +(1B|7B)" "$L/segexp_$f.log"
  done
fi
if has profile; then
  stamp "ncu"
  timeout "${NCU_TIMEOUT:-200}" ncu --clock-control none -k regex:"${NCU_REGEX:-gla_|prologue}" --launch-count "${NCU_COUNT:-14}" \
    --set full --import-source yes -f -o "$L/prof" \
    "$B" bench attention --shapes "${NCU_SHAPE:-1B}" --seqlens 16384 --reps 1 --warmup 0 --no-sdpa \
    > "$L/ncu_run.log" 2>&1
  stamp "ncu rc=$?"
  ncu -i "$L/prof.ncu-rep" --page details > "$L/ncu_details.txt" 2>&1
  ncu -i "$L/prof.ncu-rep" --page source --csv --print-source cuda > "$L/ncu_source_cuda.csv" 2>&1 || true
  rm -f "$L/prof.ncu-rep"
  grep -E "^  [a-z_:<>, ]*(gla_|prologue|lawcat_)|Duration|Registers Per Thread|Achieved Occupancy|Compute \(SM\) Throughput|DRAM Throughput" \
    "$L/ncu_details.txt" | head -120
fi

# ---- model level: scripts/gpu_e2e.sh ----
crash_bt() {  # backtraces under cuda-gdb (no gdb on the device), on cores 12-15
  local spec bin tc
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
if has eval-cuda && [[ -x $BUILD/tests/test_eval ]]; then
  stamp "test_eval [cuda]"
  timeout 120 "$BUILD/tests/test_eval" "[cuda]" > "$L/test_eval_cuda.log" 2>&1; stamp "rc=$?"
  tail -4 "$L/test_eval_cuda.log"
fi
if has prefill; then
  stamp "bench prefill"
  timeout "${PREFILL_TIMEOUT:-200}" "$B" bench prefill --config configs/llama3.2-1b.config.json --device cuda \
    --profile "${PROFILE_LENGTHS:-4096,65536}" --json "$L/bench_prefill.json" > "$L/bench_prefill.log" 2>&1
  stamp "rc=$?"; tail -12 "$L/bench_prefill.log"
fi
if has prefill-ab; then
  stamp "bench prefill, LAWCAT only, fused prefill off"
  LAWCAT_NO_FUSED_PREFILL=1 timeout 120 "$B" bench prefill --config configs/llama3.2-1b.config.json --device cuda \
    --no-softmax --lengths 4096,16384,65536 --decode-tokens 8 > "$L/bench_prefill_ab.log" 2>&1
  stamp "rc=$?"; tail -6 "$L/bench_prefill_ab.log"
fi
if has train; then
  stamp "bench train"
  timeout "${TRAIN_TIMEOUT:-200}" "$B" bench train --config configs/llama3.2-1b.config.json --device cuda \
    --profile --json "$L/bench_train.json" > "$L/bench_train.log" 2>&1
  stamp "rc=$?"; grep -A6 "^mode" "$L/bench_train.log"
fi
if [[ -n "${CRASH_PID:-}" ]]; then wait "$CRASH_PID"; stamp "backtraces"; cat "$L/crash.log"; fi

# ---- whole suite: scripts/gpu_validate.sh ----
if has validate; then
  stamp "ctest"
  (cd "$BUILD" && timeout "${TEST_TIMEOUT:-200}" ctest --no-tests=error -j4 --output-on-failure -E fuzz > "$L/ctest.log" 2>&1)
  rc=$?; [[ $rc -ne 0 ]] && status=1
  stamp "ctest rc=$rc"; grep -E "tests passed|Failed|\*\*\*|Passed" "$L/ctest.log" | tail -20
fi
if has validate-prefill; then
  stamp "bench prefill (Llama-3.2-1B shape, random weights)"
  timeout "${BENCH_TIMEOUT:-150}" "$B" bench prefill --config configs/llama3.2-1b.config.json \
    --device cuda --json "$L/bench_prefill.json" > "$L/bench_prefill.log" 2>&1
  stamp "bench prefill rc=$?"; tail -25 "$L/bench_prefill.log"
fi
if has validate-train; then
  stamp "training-step parts (bench train-parts, stories260K, CPU)"
  D="${LAWCAT_SHARED_DATA:-$ROOT/.devdata}"
  { "$B" convert --llama2c "$D/models/stories260K/stories260K.bin" --tokenizer "$D/models/stories260K/tok512.bin" \
      --out "$L/stories260k" && timeout "${BENCH_TIMEOUT:-150}" "$B" bench train-parts --model "$L/stories260k"; } \
    > "$L/bench_train.log" 2>&1
  stamp "bench train-parts rc=$?"; tail -25 "$L/bench_train.log"
fi

# ---- data parallel: scripts/gpu_dp.sh ----
if has dp-test || has smoke; then
  if [[ $DP_DEVICE == cuda ]]; then
    ngpu=$(nvidia-smi -L 2>/dev/null | wc -l)
    [[ $ngpu -ge 2 ]] || stamp "warning: $ngpu GPU(s); the NCCL test skips and the smoke run needs 2 (use nvidia-h200-x2)"
  fi
  [[ -x $B ]] || { stamp "no $B: run the build stage first"; exit 1; }
  "$B" info | tee "$L/info.txt"
fi
if has dp-test; then
  stamp "test_train [distributed]"
  OMP_WAIT_POLICY=passive timeout 300 "$BUILD/tests/test_train" "[distributed]" --durations yes \
    > "$L/test_distributed.log" 2>&1
  rc=$?; [[ $rc -ne 0 ]] && status=1
  stamp "test_train [distributed] rc=$rc: $(grep -E '^(test cases|All tests)' "$L/test_distributed.log" | tail -1)"
  grep -E "SKIPPED|FAILED|max_diff|with expansion" -A2 "$L/test_distributed.log" | head -40
fi
if has smoke; then
  S=/tmp/gpu_dp_smoke
  rm -rf "$S"; mkdir -p "$S"
  D="${LAWCAT_SHARED_DATA:-$ROOT/.devdata}"   # .devdata carried (the default), or the data folder
  if [[ ! -f $D/models/stories260K/stories260K.bin ]]; then
    stamp "smoke skipped: $D/models/stories260K missing (carry .devdata, or set LAWCAT_SHARED_DATA)"; exit 1
  fi
  # stories260K + TinyStories, the quickstart's layer, a few steps of each stage.
  cat > "$S/tiny.yaml" <<EOF
output_dir: $S/run
seed: 0
device: $DP_DEVICE
threads: 1
model:
  llama2c: $D/models/stories260K/stories260K.bin
  llama2c_tokenizer: $D/models/stories260K/tok512.bin
attention:
  conv_width: 4
  gate_rank: 16
  gate_tau: 16
  window: 64
data:
  train: [$D/corpora/tinystories/tinystories_train_head.txt]
  validation: [$D/corpora/tinystories/tinystories_val_tail.txt]
  seq_len: 128
  add_eos: false
distill:
  steps: 30
  batch_size: 1
  grad_accum: 1
  lr: 1.0e-2
  eval_every: 10
  val_batches: 4
  keep_last: 1
lora:
  steps: 20
  batch_size: 1
  grad_accum: 1
  lr: 1.0e-4
  eval_every: 10
  val_batches: 4
  keep_last: 1
pretrain:
  enabled: false
EOF
  backend=nccl; [[ $DP_DEVICE == cuda ]] || backend=store
  port=$(( 29500 + RANDOM % 1000 ))
  stamp "smoke: lawcat distill as 2 ranks ($backend, global batch 2 = 1 per rank)"
  pids=()
  for r in 0 1; do
    OMP_WAIT_POLICY=passive RANK=$r LOCAL_RANK=$r WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port \
      LAWCAT_DP_BACKEND=$backend timeout 300 "$B" distill "$S/tiny.yaml" --no-progress \
      > "$L/smoke_rank$r.log" 2>&1 &
    pids+=($!)
  done
  rc0=0; wait "${pids[0]}" || rc0=$?
  rc1=0; wait "${pids[1]}" || rc1=$?
  [[ $rc0 -ne 0 || $rc1 -ne 0 ]] && status=1
  stamp "smoke 2 ranks: rc $rc0 / $rc1; backend lines: $(grep -ho '(NCCL all-reduce)\|(store all-reduce)' "$L"/smoke_rank*.log | sort | uniq -c | tr '\n' ' ')"
  [[ $rc0 -ne 0 || $rc1 -ne 0 ]] && tail -20 "$L/smoke_rank0.log" "$L/smoke_rank1.log"
  # One process sees the same 2 sequences per step as 2 micro-batches of 1 (as the unit test).
  stamp "smoke: one process, the same global batch (grad_accum 2)"
  DEV1=$DP_DEVICE; [[ $DP_DEVICE == cuda ]] && DEV1=cuda:0
  OMP_WAIT_POLICY=passive timeout 300 "$B" distill "$S/tiny.yaml" --set output_dir="$S/single" --set device="$DEV1" \
    --set distill.grad_accum=2 --set lora.grad_accum=2 --no-progress \
    > "$L/smoke_single.log" 2>&1
  rc=$?; [[ $rc -ne 0 ]] && status=1
  stamp "smoke single rc=$rc"
  {
    echo "validation loss by stage: 2 ranks vs 1 process (same global batches; fp32 sum order only)"
    for st in distill lora; do
      for run in run single; do
        m="$S/$run/$st/metrics.jsonl"
        [[ -f $m ]] && echo "$st $run: $(grep '"val' "$m" | tail -1)"
      done
    done
  } | tee "$L/smoke_summary.txt"
fi

# ---- A/B timing: scripts/ab_bench.sh (this tree was built above) ----
if has ab; then
  T1=$(date +%s)
  ( CONFIGURE_TAG=_base configure_tree build-ab-src build-gpu if-missing
    BUILD=build-ab-src/build-gpu build_targets 300 keep-going "$L/base_build.log" lawcat ) &
  BPID=$!
  timeout 300 "$BUILD/tests/test_cuda" "lawcat_core*" > "$L/test_core.log" 2>&1; echo "test rc=$?"; tail -3 "$L/test_core.log"
  grep -E "FAILED|with expansion|rel err" "$L/test_core.log" | head -20
  wait $BPID; echo "base build rc=$? after $(( $(date +%s) - T1 ))s"; tail -3 "$L/base_build.log"
  for round in 1 2; do
    for v in new base; do
      bin=$B; [[ $v == base ]] && bin=build-ab-src/build-gpu/lawcat
      # shellcheck disable=SC2086  # SEQS is one comma list
      "$bin" bench attention --seqlens ${SEQS:-16384} --no-sdpa --reps 25 --json "$L/ab_${v}_$round.json" \
        > "$L/ab_${v}_$round.log" 2>&1
      echo "== $v round $round"; grep -E "^ +(1B|7B)" "$L/ab_${v}_$round.log"
    done
  done
fi

# ---- torch-free kernel harness: scripts/kernel_harness.sh ----
if has harness; then
  stamp "harness ${HARNESS_MODE:-all}"
  (
    set -e
    BIN=/tmp/fused_fwd_harness
    read -r -a flags <<< "${HARNESS_NVCC_FLAGS:-}"
    SRCS=("$ROOT/tests/cuda/fused_fwd_harness.cu" "$ROOT"/csrc_kernels/lawcat/fused_*.cu)
    objs=(); pids=()
    for s in "${SRCS[@]}"; do
      o="/tmp/harness_$(basename "$s" .cu).o"
      nvcc -O3 -std=c++17 -arch=sm_90 --expt-relaxed-constexpr -lineinfo -I "$ROOT/csrc_kernels" "${flags[@]}" \
        -c "$s" -o "$o" &
      objs+=("$o"); pids+=($!)
    done
    for pid in "${pids[@]}"; do wait "$pid"; done
    nvcc -arch=sm_90 "${objs[@]}" -o "$BIN"
    "$BIN" "${HARNESS_MODE:-all}"
  )
  rc=$?; [[ $rc -ne 0 ]] && status=1
  stamp "harness rc=$rc"
fi

# failures at the end (the reply keeps the tail of the output)
for f in test_cuda sanitize_memcheck sanitize_racecheck; do
  [[ -f "$L/$f.log" ]] && grep -E "FAILED|REQUIRE|CHECK\(|with expansion|rel err|ERROR SUMMARY|Invalid|Race" "$L/$f.log" | head -60
done
stamp "done status=$status"
exit $status
