#!/usr/bin/env bash
# scripts/repro.sh on the GPU machine, in one device call per batch of stages.
#
# Here (no GPU): gather what the call needs into two git-ignored folders, carried with it:
#   scripts/gpu_repro.sh pack            # .devdata (the ../shared/data files the repro reads),
#                                        # .devdeps (headers and the safetensors wheel the GPU
#                                        # machine may lack)
#   REPRO_PACK=eval scripts/gpu_repro.sh pack   # only what the evals read (no training corpora)
#   REPRO_PACK=train scripts/gpu_repro.sh pack  # training, `lawcat tasks`, passkey and ppl (no bAbI
#                                               # test files: BABILong needs them)
# The device takes at most 64 MiB with the working tree; pack says what the carry adds up to.
# There (device call with carry [".devdata", ".devdeps", "runs/repro/tasks"]):
#   scripts/gpu_repro.sh build probe                 # build-gpu, then the diagnosis sweep
#   scripts/gpu_repro.sh build tasks train eval report
#   scripts/gpu_repro.sh build rebuild eval          # evaluate runs carried as small checkpoints
# REPRO_TIMEOUT_<stage> bounds a stage (seconds) so the call ends inside the device's limit.
# Stages after `build` are scripts/repro.sh's (tasks train grid sharpen eval report), `probe`, or
# `rebuild`: a run carried without its 25 MB export (runs/repro/{students,grid}/<name> with
# distill/best, lora/best and export/config.json) gets its export back from
# scripts/rebuild_export.py, so a later call can evaluate runs trained by an earlier one.
# Logs, run summaries and docs/results are packed into $OUT/repro.tgz (the device returns
# at most 8 files, each at most 16 MiB: a bigger archive comes back as repro.tgz.part_aa, _ab, ...).
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
T0=$(date +%s)
stamp() { echo "[gpu_repro +$(( $(date +%s) - T0 ))s] $*"; }
S=../shared/data

if [[ "${1:-}" == pack ]]; then
  rm -rf .devdata .devdeps
  mkdir -p .devdata/models .devdata/corpora/{gutenberg,wikipedia,alpaca,tinystories,moby_dick} \
    .devdata/eval/ruler .devdata/eval/babilong .devdata/eval/babi/tasks_1-20_v1-2/en .devdeps/include
  cp -r $S/models/retriever13m .devdata/models/
  if [[ "${REPRO_PACK:-all}" == eval ]]; then   # held-out text only
    cp $S/corpora/gutenberg/*_val.jsonl.xz .devdata/corpora/gutenberg/
    cp $S/corpora/wikipedia/*_val.jsonl.xz .devdata/corpora/wikipedia/
  else
    cp $S/corpora/gutenberg/*.xz .devdata/corpora/gutenberg/
    cp $S/corpora/wikipedia/*.xz .devdata/corpora/wikipedia/
    cp $S/corpora/alpaca/alpaca_5000.json .devdata/corpora/alpaca/
  fi
  cp $S/corpora/tinystories/tinystories_val_head.txt .devdata/corpora/tinystories/
  cp $S/corpora/moby_dick/moby_dick.txt .devdata/corpora/moby_dick/
  cp $S/eval/ruler/* .devdata/eval/ruler/
  cp $S/eval/babilong/* .devdata/eval/babilong/
  if [[ "${REPRO_PACK:-all}" == train ]]; then   # `lawcat tasks` reads the bAbI train files only
    cp $S/eval/babi/tasks_1-20_v1-2/en/qa[123]_*_train.txt .devdata/eval/babi/tasks_1-20_v1-2/en/
  else
    cp $S/eval/babi/tasks_1-20_v1-2/en/qa[123]_* .devdata/eval/babi/tasks_1-20_v1-2/en/
  fi
  cp -r /usr/include/CLI /usr/include/lzma.h /usr/include/lzma .devdeps/include/
  # rebuild_export.py reads safetensors and the run's config.yaml; the GPU machine's python3 may lack both
  python3 -m pip download safetensors pyyaml --no-deps --only-binary=:all: --python-version 3.12 \
    --platform manylinux2014_x86_64 -d .devdeps/wheels -q 2>/dev/null \
    || "${LAWCAT_VENV:-$HOME/.cache/lawcat/venv}/bin/pip" download safetensors pyyaml --no-deps --only-binary=:all: \
         --python-version 3.12 --platform manylinux2014_x86_64 -d .devdeps/wheels -q \
    || echo "pack: no safetensors / pyyaml wheels (the rebuild stage needs them in python3 on the GPU machine)"
  grep -qx '/.devdata/' .git/info/exclude 2>/dev/null || echo '/.devdata/' >> .git/info/exclude
  du -sh .devdata .devdeps
  tree=$(git ls-files -z | du -cb --files0-from=- | tail -1 | cut -f1)
  total=$(( tree + $(du -sb .devdata | cut -f1) + $(du -sb .devdeps | cut -f1) ))
  echo "pack: working tree + .devdata + .devdeps = $(( total / 1048576 )) MiB (the device takes 64 MiB in all)"
  (( total <= 64 * 1048576 )) || echo "pack: over the device's 64 MiB: REPRO_PACK=train or eval packs less" >&2
  exit 0
fi

export LAWCAT_SHARED_DATA="$ROOT/.devdata" TORCH_CUDA_ARCH_LIST=9.0
mkdir -p ../shared && ln -sfn "$ROOT/.devdata" ../shared/data   # the configs name ../shared/data
OUT="${OUT:-$ROOT/out}"
L=/tmp/gpu_repro
mkdir -p "$OUT" "$L"
pack_out() {
  # evals cut by a stage timeout: stop them writing first (by process name: a -f pattern would
  # also match the shell whose command line names the binary); only this script's process group:
  # a full-budget run started by the `full` stage (setsid) trains on into the next call
  pkill -x lawcat -g "$(ps -o pgid= $$ | tr -d ' ')" 2>/dev/null && sleep 2
  tar czf "$OUT/repro.tgz" --ignore-failed-read \
    $(ls -d runs/repro/*/results.* runs/repro/*/*/summary.* runs/repro/*/*/distill/metrics.jsonl \
            runs/repro/*/*/lora/metrics.jsonl runs/repro/*/*/run.log runs/repro/*/*/distill/best/trainable.safetensors \
            runs/repro/*/*/lora/best/trainable.safetensors runs/repro/*/*/config.yaml runs/repro/eval docs/results \
            runs/repro/students/*/perturb.txt runs/repro/students/*/export/config.json \
            runs/repro/sharpen/*/eval_x* runs/repro/sharpen/*/*.txt 2>/dev/null) \
    "$L" 2>/dev/null
  # the device returns files up to 16 MiB: split a bigger archive (cat repro.tgz.part_* | tar xz)
  if (( $(stat -c %s "$OUT/repro.tgz") > 15 * 1024 * 1024 )); then
    split -b 15M "$OUT/repro.tgz" "$OUT/repro.tgz.part_" && rm "$OUT/repro.tgz"
  fi
}
trap pack_out EXIT
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader

if [[ " $* " == *" build "* ]]; then
  stamp "configure + build"
  X=()
  if [[ ! -f /usr/include/lzma.h ]]; then
    lib=$(ls /usr/lib/x86_64-linux-gnu/liblzma.so* /lib/x86_64-linux-gnu/liblzma.so* 2>/dev/null | head -1)
    [[ -n "$lib" ]] && X+=(-DLIBLZMA_INCLUDE_DIR="$ROOT/.devdeps/include" -DLIBLZMA_LIBRARY="$lib")
  fi
  cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_PREFIX_PATH="$(python3 -c 'import torch.utils;print(torch.utils.cmake_prefix_path)')" "${X[@]}" \
    > "$L/configure.log" 2>&1 || { stamp "configure FAILED"; tail -30 "$L/configure.log"; exit 1; }
  timeout "${BUILD_TIMEOUT:-420}" cmake --build build-gpu -j16 --target lawcat > "$L/build.log" 2>&1 \
    || { stamp "build FAILED"; grep -E "error" "$L/build.log" | head -30; exit 1; }
  build-gpu/lawcat info
  stamp "built"
fi
export LAWCAT_BIN=build-gpu/lawcat
for f in runs/repro/tasks/*.jsonl.xz; do [[ -f $f && ! -f ${f%.xz} ]] && xz -dk "$f"; done

if [[ " $* " == *" probe "* ]]; then
  J="${REPRO_JOBS:-9}"
  stamp "probe: configs/repro/probe.yaml in $J shards"
  pids=()
  for ((i = 0; i < J; i++)); do
    timeout "${PROBE_TIMEOUT:-330}" $LAWCAT_BIN sweep configs/repro/probe.yaml --shard "$i/$J" \
      > "$L/probe_shard$i.log" 2>&1 & pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p"; done
  stamp "probe trained"; grep -h "run summary\|MSE\|ppl\|error" "$L"/probe_shard*.log | head -40
  $LAWCAT_BIN sweep configs/repro/probe.yaml > "$L/probe_table.log" 2>&1; tail -14 "$L/probe_table.log"
  models=("$S/models/retriever13m")
  for d in runs/repro/probe/*/export; do [[ -f $d/config.json ]] && models+=("$d"); done
  pids=()
  for m in "${models[@]}"; do
    n=$(basename "$(dirname "$m")"); [[ $m == *retriever13m ]] && n=teacher
    timeout 200 $LAWCAT_BIN eval --task passkey --models "$m" --lengths 1024,2048,4096 --depths 0,50,100 --samples 2 \
      --device cuda --out "runs/repro/eval/probe_parts/$n" --no-plot --no-progress > "$L/probe_eval_$n.log" 2>&1 &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p"; done
  mkdir -p runs/repro/eval/probe
  cat runs/repro/eval/probe_parts/*/results.jsonl > runs/repro/eval/probe/results.jsonl
  ms=$(IFS=,; echo "${models[*]}")
  $LAWCAT_BIN eval --task passkey --models "$ms" --lengths 1024,2048,4096 --depths 0,50,100 --samples 2 \
    --device cuda --out runs/repro/eval/probe --no-progress 2>&1 | tail -30
  stamp "probe done"
fi

# rebuild_export.py and the sharpen stage's perturb_export.py read safetensors, rebuild_export.py
# also yaml (carried as wheels)
for mod in safetensors:safetensors yaml:[Pp]y[Yy][Aa][Mm][Ll]; do
  python3 -c "import ${mod%%:*}" 2>/dev/null && continue
  w=$(ls .devdeps/wheels/${mod#*:}-*.whl 2>/dev/null | head -1)
  [[ -n "$w" ]] && python3 -m zipfile -e "$w" /tmp/gpu_repro_py && export PYTHONPATH="/tmp/gpu_repro_py${PYTHONPATH:+:$PYTHONPATH}"
done

if [[ " $* " == *" rebuild "* ]]; then
  for run in runs/repro/students/*/ runs/repro/grid/*/; do
    run=${run%/}
    [[ -f $run/distill/best/trainable.safetensors && -f $run/export/config.json && ! -f $run/export/model.safetensors ]] || continue
    python3 scripts/rebuild_export.py --teacher "$S/models/retriever13m" --run "$run" --out "$run/export" \
      || stamp "rebuild FAILED: $run"
  done
  stamp "rebuilt exports"
fi

if [[ " $* " == *" full "* ]]; then
  # students at the config's full budget (REPRO_FULL="name:override name2:override;override ..."),
  # each `lawcat distill` in its own session so that it outlives this call and the next call
  # (warm machine) finds it finished or resumes it; REPRO_SET does not apply to them.
  for spec in ${REPRO_FULL:-}; do
    name=${spec%%:*}; IFS=';' read -ra ov <<< "${spec#*:}"
    sets=(--set "output_dir=runs/repro/students/$name"); for o in "${ov[@]}"; do [[ -n $o ]] && sets+=(--set "$o"); done
    [[ -f runs/repro/students/$name/export/config.json ]] && continue
    mkdir -p "runs/repro/students/$name"
    setsid nohup $LAWCAT_BIN distill configs/repro/lawcat.yaml "${sets[@]}" > "$L/full_$name.log" 2>&1 < /dev/null &
    stamp "full: $name started (${sets[*]})"
  done
fi
if [[ " $* " == *" waitfull "* ]]; then
  # the next call: wait (up to REPRO_TIMEOUT_waitfull s) for the full-budget runs still training
  end=$(( $(date +%s) + ${REPRO_TIMEOUT_waitfull:-240} ))
  while pgrep -x lawcat > /dev/null && (( $(date +%s) < end )); do sleep 5; done
  stamp "waitfull: $(pgrep -xc lawcat) lawcat processes still running"
fi

rest=()
for s in "$@"; do [[ $s == build || $s == probe || $s == rebuild || $s == full || $s == waitfull ]] || rest+=("$s"); done
if ((${#rest[@]})); then
  stamp "repro.sh ${rest[*]}"
  for st in "${rest[@]}"; do
    stages=$st
    # train and grid together: repro.sh runs both sets of shards at once (REPRO_TIMEOUT_train bounds them)
    if [[ $st == grid && " ${rest[*]} " == *" train "* ]]; then continue; fi
    if [[ $st == train && " ${rest[*]} " == *" grid "* ]]; then stages="train grid"; fi
    to=REPRO_TIMEOUT_${st}; timeout "${!to:-3000}" scripts/repro.sh $stages 2>&1 | tee -a "$L/repro_$st.log" | grep -v "^\[.*info" | tail -60
  done
fi
stamp "end"
