#!/usr/bin/env bash
# Session 14, the device call of the ninth round (docs/results/NOTES.md), kept as it ran: build,
# `lawcat tasks`, the three students of the round (configs/repro/students.yaml), then the sharpen
# stage of each in parallel (three repro.sh processes, one spec each: the copying head L3h3 x {2,3,4,6}
# scored on eval seed 1, picked by smallest95), then passkey and ppl of students and picks at the fixed
# eval seed 0 until the budget; a later call on the warm machine runs the remaining eval groups
# (`REPRO_EVAL="niah babilong longppl" scripts/gpu_repro.sh eval`, same REPRO_ONLY / REPRO_PRIOR).
# Run from the repo root on the GPU machine with .devdata and .devdeps carried
# (`REPRO_PACK=train scripts/gpu_repro.sh pack`). BUDGET: seconds for the whole call (default 570).
set -uo pipefail
T0=$(date +%s)
A=tasks_then_generic_phi128_w8_window_lora1500
M=tasks_then_mixed_phi128_w8_window_lora1500
N=tasks_then_mixed_phi128_w8_lora1500
export REPRO_ONLY=$A,$M,$N REPRO_PRIOR=docs/results REPRO_SHARPEN_SCALES="2 3 4 6"
left() { echo $((T0 + ${BUDGET:-570} - $(date +%s))); }
REPRO_TIMEOUT_tasks=90 scripts/gpu_repro.sh build tasks 2>&1 | tail -12
# training gets what is left but a reserve for the sharpen stage and the seed-0 evals, and at least
# 280 s while the budget has them (stage 1 + stage 2 take ~250 s): trained students come back as
# small checkpoints (repro.tgz) that a later call or the CPU can rebuild, sharpen and evaluate
tt=$(( $(left) - 130 )); (( tt >= 280 )) || tt=$(( $(left) - 10 < 280 ? $(left) - 10 : 280 ))
REPRO_TIMEOUT_train=$tt scripts/gpu_repro.sh train 2>&1 | tail -20
echo "[round9 +$(( $(date +%s) - T0 ))s] sharpen, $(left) s left"
# the safetensors wheel the first call unpacked: found, so the parallel calls below do not unpack it again
[[ -d /tmp/gpu_repro_py ]] && export PYTHONPATH=/tmp/gpu_repro_py
pids=()
ts=$(( $(left) - 20 )); (( ts > 30 )) || ts=30   # timeout 0 would mean no limit
for s in $A $M $N; do  # own process groups and OUT: each gpu_repro.sh kills its group's lawcat and packs on exit
  OUT=/tmp/round9_out_$s REPRO_SHARPEN=$s:3:3:smallest95 REPRO_TIMEOUT_sharpen=$ts \
    setsid -w scripts/gpu_repro.sh sharpen > /tmp/round9_sharpen_$s.log 2>&1 & pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
grep -h "sharpen:" /tmp/round9_sharpen_*.log
echo "[round9 +$(( $(date +%s) - T0 ))s] eval passkey ppl, $(left) s left"
(( $(left) > 40 )) && REPRO_EVAL="passkey ppl" REPRO_TIMEOUT_eval=$(( $(left) - 15 )) scripts/gpu_repro.sh eval 2>&1 | tail -5
ls runs/repro/students runs/repro/eval/parts 2>/dev/null
cp /tmp/round9_sharpen_*.log /tmp/gpu_repro/ 2>/dev/null
scripts/gpu_repro.sh > /dev/null 2>&1   # no stage: packs logs, runs and docs into $OUT/repro.tgz
echo "[round9 +$(( $(date +%s) - T0 ))s] end"
