#!/usr/bin/env bash
# Data parallel over NCCL on a 2-GPU machine (device kind nvidia-h200-x2), in one call:
#   build    configure build-gpu (Ninja, Release, the machine's torch; NCCL detected from
#            its nvidia.nccl package) and build lawcat + test_train
#   test     test_train "[distributed]": the CPU store test, the 2-GPU NCCL test
#            ("2 GPUs over NCCL give one GPU's weights") and the backend-choice tests
#   smoke    `lawcat distill` as 2 ranks (LAWCAT_DP_BACKEND=nccl, cuda:0 and cuda:1) on
#            stories260K, a tiny config (seq 128, 30 + 20 steps, 1 sequence per rank), then
#            the same global batch in one process on cuda:0 (2 micro-batches of 1); prints
#            both runs' last validation losses (equal up to fp32 sum order)
# Logs go to $OUT (default ./out): stamps.log, configure.log (+ build.log on failure),
# info.txt, test_distributed.log, smoke_rank{0,1}.log, smoke_single.log, smoke_summary.txt.
# Needs .devdeps (CLI11) and .devdata (stories260K, TinyStories) carried to the machine.
# Usage: scripts/gpu_dp.sh [build] [test] [smoke]         (default: all three)
# Env: BUILD (default build-gpu), DP_DEVICE (cuda; `cpu` rehearses the smoke stage on a CPU
#      machine with the store backend), BUILD_TIMEOUT (s, default 420).
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
OUT="${OUT:-$ROOT/out}"
mkdir -p "$OUT"
BUILD="${BUILD:-build-gpu}"
DP_DEVICE="${DP_DEVICE:-cuda}"
T0=$(date +%s)
stamp() { echo "[gpu_dp +$(( $(date +%s) - T0 ))s] $*" | tee -a "$OUT/stamps.log"; }
has() { [[ " $STAGES " == *" $1 "* ]]; }
STAGES="${*:-build test smoke}"
status=0
export LAWCAT_SHARED_DATA="$ROOT/.devdata" TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-9.0}" OMP_WAIT_POLICY=passive

if [[ $DP_DEVICE == cuda ]]; then
  nvidia-smi --query-gpu=index,name,memory.total --format=csv,noheader 2>&1 | tee "$OUT/gpus.txt"
  ngpu=$(nvidia-smi -L 2>/dev/null | wc -l)
  [[ $ngpu -ge 2 ]] || stamp "warning: $ngpu GPU(s); the NCCL test skips and the smoke run needs 2 (use nvidia-h200-x2)"
fi

if has build; then
  stamp "configure $BUILD"
  PY="$(command -v python3)"
  cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DPython3_EXECUTABLE="$PY" \
    -DCMAKE_PREFIX_PATH="$("$PY" -c 'import torch.utils;print(torch.utils.cmake_prefix_path)')" \
    > "$OUT/configure.log" 2>&1 || { stamp "configure FAILED"; tail -30 "$OUT/configure.log"; exit 1; }
  stamp "$(grep -E 'lawcat: (NCCL|nccl)' "$OUT/configure.log" | sed 's/^-- //')"
  stamp "build lawcat test_train"
  timeout "${BUILD_TIMEOUT:-420}" cmake --build "$BUILD" -j "$(nproc)" --target lawcat test_train \
    > "$OUT/build.tmp" 2>&1
  rc=$?
  if [[ $rc -ne 0 ]]; then
    mv "$OUT/build.tmp" "$OUT/build.log"
    stamp "build FAILED (rc=$rc; build.log)"; grep -E "error|Error" "$OUT/build.log" | head -30; exit 1
  fi
  rm -f "$OUT/build.tmp"
  stamp "built"
fi
B="$BUILD/lawcat"
[[ -x $B ]] || { stamp "no $B: run the build stage first"; exit 1; }
"$B" info | tee "$OUT/info.txt"

if has test; then
  stamp "test_train [distributed]"
  timeout 300 "$BUILD/tests/test_train" "[distributed]" --durations yes > "$OUT/test_distributed.log" 2>&1
  rc=$?; [[ $rc -ne 0 ]] && status=1
  stamp "test_train [distributed] rc=$rc: $(grep -E '^(test cases|All tests)' "$OUT/test_distributed.log" | tail -1)"
  grep -E "SKIPPED|FAILED|max_diff|with expansion" -A2 "$OUT/test_distributed.log" | head -40
fi

if has smoke; then
  S=/tmp/gpu_dp_smoke
  rm -rf "$S"; mkdir -p "$S"
  D="$ROOT/.devdata"
  if [[ ! -f $D/models/stories260K/stories260K.bin ]]; then
    stamp "smoke skipped: $D/models/stories260K missing (carry .devdata)"; exit 1
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
    RANK=$r LOCAL_RANK=$r WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port LAWCAT_DP_BACKEND=$backend \
      timeout 300 "$B" distill "$S/tiny.yaml" --no-progress \
      > "$OUT/smoke_rank$r.log" 2>&1 &
    pids+=($!)
  done
  rc0=0; wait "${pids[0]}" || rc0=$?
  rc1=0; wait "${pids[1]}" || rc1=$?
  [[ $rc0 -ne 0 || $rc1 -ne 0 ]] && status=1
  stamp "smoke 2 ranks: rc $rc0 / $rc1; backend lines: $(grep -ho '(NCCL all-reduce)\|(store all-reduce)' "$OUT"/smoke_rank*.log | sort | uniq -c | tr '\n' ' ')"
  [[ $rc0 -ne 0 || $rc1 -ne 0 ]] && tail -20 "$OUT/smoke_rank0.log" "$OUT/smoke_rank1.log"
  # One process sees the same 2 sequences per step as 2 micro-batches of 1 (as the unit test).
  stamp "smoke: one process, the same global batch (grad_accum 2)"
  DEV1=$DP_DEVICE; [[ $DP_DEVICE == cuda ]] && DEV1=cuda:0
  timeout 300 "$B" distill "$S/tiny.yaml" --set output_dir="$S/single" --set device=$DEV1 \
    --set distill.grad_accum=2 --set lora.grad_accum=2 --no-progress \
    > "$OUT/smoke_single.log" 2>&1
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
  } | tee "$OUT/smoke_summary.txt"
fi
stamp "done (status $status)"
exit $status
