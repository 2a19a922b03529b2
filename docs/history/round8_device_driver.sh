#!/usr/bin/env bash
# Session 13, device call A, kept as it ran (docs/results/NOTES.md, eighth round): build; `lawcat tasks`;
# stage 1 of tasks_then_generic_phi128_w8; its distill checkpoint sharpened (perturb_export.py) and
# stage 2 trained on top with lora.lora_layers=[0, 1, 2, 4, 5] (setsid: the 4000-step runs outlive the
# call); the #14 [cuda] cases and racecheck while they train; then passkey (seeds 1 and 0) and ppl.
# Run from the repo root on the GPU machine with .devdata (scripts/gpu_repro.sh pack) and .devdeps
# carried; the second call evaluated the rest with the same `lawcat eval` commands. SMOKE=1 PY=<python
# with torch> runs it on the CPU with 2-step stages.
set -uo pipefail
T0=$(date +%s); stamp() { echo "[+$(( $(date +%s) - T0 ))s] $*"; }
ROOT=$PWD; L=$OUT/logs; mkdir -p $L
export LAWCAT_SHARED_DATA=$ROOT/.devdata TORCH_CUDA_ARCH_LIST=9.0
if [[ -n ${SMOKE:-} ]]; then SM_STEPS=2 SM_COUNT=20 SM_PPL=2000; else mkdir -p ../shared && ln -sfn $ROOT/.devdata ../shared/data; fi
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
w=$(ls .devdeps/wheels/safetensors-*.whl | head -1); python3 -m zipfile -e "$w" /tmp/stpy; export PYTHONPATH=/tmp/stpy
X=(); if [[ ! -f /usr/include/lzma.h ]]; then lib=$(ls /usr/lib/x86_64-linux-gnu/liblzma.so* | head -1); X+=(-DLIBLZMA_INCLUDE_DIR=$ROOT/.devdeps/include -DLIBLZMA_LIBRARY=$lib); fi
if [[ -n ${SMOKE:-} ]]; then mkdir -p build-gpu; ln -sfn ../build/lawcat build-gpu/lawcat; else
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$(python3 -c 'import torch.utils;print(torch.utils.cmake_prefix_path)')" "${X[@]}" > $L/configure.log 2>&1 || { tail -30 $L/configure.log; exit 1; }
cmake --build build-gpu -j16 --target lawcat > $L/build.log 2>&1 || { grep -E "error" $L/build.log | head -30; exit 1; }
fi
stamp built; B=build-gpu/lawcat
mkdir -p runs/repro/tasks
$B tasks --tokenizer ../shared/data/models/retriever13m --out runs/repro/tasks/tasks.jsonl --count ${SM_COUNT:-6000} --min-tokens 128 --max-tokens 1024 > $L/tasks1.log 2>&1 &
$B tasks --tokenizer ../shared/data/models/retriever13m --out runs/repro/tasks/tasks2.jsonl --seed 2 --count ${SM_COUNT:-6000} --min-tokens 128 --max-tokens 1024 > $L/tasks2.log 2>&1 &
wait; stamp "tasks: $(wc -l < runs/repro/tasks/tasks.jsonl) + $(wc -l < runs/repro/tasks/tasks2.jsonl)"
# test_cuda builds while stage 1 trains
[[ -n ${SMOKE:-} ]] || ( nice cmake --build build-gpu -j8 --target test_cuda > $L/build_test.log 2>&1; echo "test_cuda build rc $?" >> $L/build_test.log ) &
BT=$!
S=tasks_then_generic_phi128_w8
SETS=(--set "distill.data=[../shared/data/corpora/alpaca/alpaca_5000.json, runs/repro/tasks/tasks.jsonl, runs/repro/tasks/tasks2.jsonl]"
      --set attention.feature_dim=64 --set attention.conv_width=8 --set distill.steps=600 --set data.cache_dir=runs/repro/cache)
[[ -n ${SMOKE:-} ]] && SETS+=(--set device=cpu --set threads=2 --set data.seq_len=128 --set data.max_tokens=60000 --set distill.steps=2 --set distill.batch_size=2 --set distill.eval_every=1 --set distill.val_batches=1 --set lora.batch_size=2 --set lora.eval_every=1 --set lora.val_batches=1 --set export_dtype=fp32)
$B distill configs/repro/lawcat.yaml "${SETS[@]}" --set output_dir=runs/r13/students/$S --stage distill --no-progress > $L/stage1.log 2>&1 \
  || { stamp "stage 1 FAILED"; tail -20 $L/stage1.log; }
stamp "stage 1 done"; grep -i "best\|summary" $L/stage1.log | tail -3
# stage 2 on top of the sharpened distill checkpoint: adapters off layer 3 (the copying head's layer)
launch() {  # name scale lora_layers steps
  local n=$1 sc=$2 ll=$3 st=$4 d=runs/r13/students/$1
  mkdir -p $d/distill
  ${PY:-python3} scripts/perturb_export.py runs/r13/students/$S/distill/best $d/distill/best --feature-scale $sc --layers 3 --heads 3 > $L/perturb_$n.log 2>&1 \
    || { stamp "perturb $n FAILED"; tail -3 $L/perturb_$n.log; return; }
  local extra=(); [[ $ll != all ]] && extra=(--set "lora.lora_layers=$ll")
  setsid nohup $B distill configs/repro/lawcat.yaml "${SETS[@]}" --set output_dir=$d --stage lora --set lora.steps=${SM_STEPS:-$st} "${extra[@]}" --no-progress > $L/stage2_$n.log 2>&1 < /dev/null &
}
for sc in 3 4 6; do launch x${sc}_no3_1500 $sc "[0, 1, 2, 4, 5]" 1500; done
for sc in 4 6; do launch x${sc}_no3_4000 $sc "[0, 1, 2, 4, 5]" 4000; done
launch x6_all_1500 6 all 1500      # control: round 7's sharpen-before row, this stage 1
stamp "stage 2 launched"; sleep 5; nvidia-smi --query-gpu=memory.used,utilization.gpu --format=csv,noheader
if [[ -z ${SMOKE:-} ]]; then wait $BT; tail -3 $L/build_test.log; stamp "test_cuda built"
build-gpu/tests/test_cuda "static_cache_attention*,lawcat_step_fused*,lawcat_core_step*" > $L/test_cuda.log 2>&1; echo "test_cuda rc $?"; tail -5 $L/test_cuda.log
stamp "tests done"
timeout 150 compute-sanitizer --tool racecheck build-gpu/tests/test_cuda "static_cache_attention CUDA equals*" > $L/racecheck_attn.log 2>&1; echo "racecheck attn rc $?"; tail -3 $L/racecheck_attn.log
stamp "racecheck done"; fi
# evaluate the 1500-step students as they finish: seed 1 (tuning) and seed 0 (reported)
PK=(--lengths 1024,2048,4096,8192,16384,32768 --depths 0,25,50,75,100); DEV=cuda
[[ -n ${SMOKE:-} ]] && PK=(--lengths 256 --depths 0) DEV=cpu
ev() {  # name
  local d=runs/r13/students/$1 e=runs/r13/eval/parts/$1
  $B eval --task passkey --models $d/export "${PK[@]}" --samples 2 --seed 1 --device $DEV --out runs/r13/tune/$1 --no-plot --no-progress > $L/eval1_$1.log 2>&1
  $B eval --task passkey --models $d/export "${PK[@]}" --samples 5 --device $DEV --out $e/passkey --no-plot --no-progress > $L/eval0_$1.log 2>&1
  for p in tinystories gutenberg wikipedia; do
    t=../shared/data/corpora/$p/${p}_val.jsonl.xz; [[ $p == tinystories ]] && t=../shared/data/corpora/tinystories/tinystories_val_head.txt
    $B eval --task ppl --models $d/export --lengths 1024 --ppl-documents --text $t --ppl-max-tokens ${SM_PPL:-200000} --device $DEV --out $e/ppl_$p --no-plot --no-progress > $L/evalppl_${p}_$1.log 2>&1
  done
}
end=$((T0 + ${BUDGET:-560}))
pending=(x3_no3_1500 x4_no3_1500 x6_no3_1500 x6_all_1500 x4_no3_4000 x6_no3_4000)
evpids=()
while ((${#pending[@]})) && (( $(date +%s) < end - 60 )); do
  left=()
  for n in "${pending[@]}"; do
    if [[ -f runs/r13/students/$n/export/config.json && -f runs/r13/students/$n/export/model.safetensors ]]; then ev $n & evpids+=($!); stamp "eval $n started"; else left+=($n); fi
  done
  pending=("${left[@]}"); sleep 5
done
stamp "waiting for evals"
while pgrep -f "lawcat eval" > /dev/null && (( $(date +%s) < end )); do sleep 3; done
pkill -f "lawcat eval" && stamp "evals cut at the budget"; sleep 1
stamp "end; still training: ${pending[*]}"
# (a throwaway script printed the per-length passkey means and ppl here)
 grep -h "best\|ppl" $L/stage2_*.log | tail -20
tar czf $OUT/r13.tgz $(ls -d runs/r13/students/*/*/metrics.jsonl runs/r13/students/*/summary.json runs/r13/students/*/config.yaml runs/r13/students/*/lora/best/trainable.safetensors runs/r13/students/*/distill/best/trainable.safetensors runs/r13/students/*/export/config.json runs/r13/tune runs/r13/eval 2>/dev/null)
ls -la $OUT

