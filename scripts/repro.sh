#!/usr/bin/env bash
# The paper's claim on a teacher that retrieves: distill retriever13m at 1K tokens into
# LAWCAT and every ablation student, evaluate all of them beside the teacher to 32K,
# and write docs/results/ (tables as Markdown + CSV + JSON, gnuplot plots, commands).
#
#   scripts/repro.sh                    # everything; re-run to resume where it stopped
#   scripts/repro.sh train eval         # some stages: tasks train grid sharpen eval report
#
# Runs on the GPU machine (one GPU; the small students share it: REPRO_JOBS processes
# at a time). Every stage resumes: sweeps skip finished runs and resume interrupted
# ones, evals skip samples already in their results.jsonl.
#
# Environment:
#   LAWCAT_BIN      the lawcat binary (default build/lawcat)
#   REPRO_JOBS      processes sharing the GPU (default 8)
#   REPRO_ONLY      students to run, comma-separated (default: all of configs/repro/students.yaml);
#                   the eval stage then scores those and their sharpen picks, and the teacher
#                   only without REPRO_PRIOR
#   REPRO_SET       extra overrides for every training run, e.g. "distill.steps=800 lora.steps=300"
#   REPRO_EVAL      eval groups (default: passkey niah babilong ppl longppl)
#   REPRO_PK_SAMPLES  passkey samples per (length, depth) cell (default 5)
#   REPRO_SHARPEN   the sharpen stage's students as student:layers:heads or student:auto (the
#                   teacher's copying head, found by scripts/diagnose_teacher.py), each optionally
#                   :best or :smallest95 (its pick rule), space-separated;
#                   REPRO_SHARPEN_SCALES the feature-map scales it tries, REPRO_SHARPEN_PICK the
#                   rule of specs without one: best (the best seed-1 passkey mean, ties to the
#                   smaller scale; the default) or smallest95 (the smallest scale within 95 % of the
#                   best mean: less perplexity for a little reach)
#   REPRO_PYTHON    a Python with torch + safetensors for the sharpen stage (default python3)
#   REPRO_SMOKE=1   a tiny slice on the CPU (2 steps per stage, short prompts): the CI check
#                   that the recipe, sweeps, evals and report fit together
#   REPRO_OUT       where the runs go (default runs/repro); docs go to REPRO_DOCS (docs/results)
#   REPRO_PRIOR     an earlier docs/results to report beside these runs (repro_report.py --prior):
#                   e.g. REPRO_PRIOR=docs/results after training a few new students with REPRO_ONLY
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
B="${LAWCAT_BIN:-build/lawcat}"
J="${REPRO_JOBS:-8}"
R="${REPRO_OUT:-runs/repro}"
DOCS="${REPRO_DOCS:-docs/results}"
DATA="../shared/data"
TEACHER="$DATA/models/retriever13m"
STAGES="${*:-tasks train grid sharpen eval report}"
has() { [[ " $STAGES " == *" $1 "* ]]; }
T0=$(date +%s)
stamp() { echo "[repro +$(( $(date +%s) - T0 ))s] $*"; }
[[ -x "$B" ]] || { echo "repro: $B not found (build first: scripts/setup.sh)" >&2; exit 1; }
[[ -d "$TEACHER" ]] || { echo "repro: the teacher $TEACHER is missing (../shared/data beside the checkout)" >&2; exit 1; }

# ---- settings: full run, or the CPU smoke slice ----------------------------------------------
SWEEP_SET=(--set "data.cache_dir=$R/cache")
for kv in ${REPRO_SET:-}; do SWEEP_SET+=(--set "$kv"); done
EVAL_GROUPS="${REPRO_EVAL:-passkey niah babilong ppl longppl}"
if [[ "${REPRO_SMOKE:-0}" == 1 ]]; then
  SWEEP_SET+=(--set device=cpu --set threads=2 --set data.seq_len=128 --set data.max_tokens=60000
              --set distill.steps=2 --set distill.batch_size=2 --set distill.eval_every=1 --set distill.val_batches=1
              --set lora.steps=2 --set lora.batch_size=2 --set lora.eval_every=1 --set lora.val_batches=1
              --set export_dtype=fp32)
  DEVICE=(--device cpu)
  TASKS_ARGS=(--min-tokens 96 --max-tokens 512) TASKS_COUNT=14 TASKS_MIX_COUNT=4   # whole documents: the BABILong template alone is ~270-390 tokens
  REPEATS_ARGS=(--count 14 --words 100 --gap 10 40 --span 4 8)
  PK=(--lengths 256 --depths 0,100 --samples 1)
  NIAH=(--variant s-niah-1 --lengths 256 --depths 50 --samples 1 --max-new-tokens 12)
  BABI=(--variant qa1 --lengths 0 --samples 1)
  LONG=(--lengths 512 --bucket 256 --samples 1)
  PPL_MAX=(--ppl-max-tokens 2000)
  PPL_SETS="tinystories"
  TUNE_PK=(--lengths 256 --depths 0,100 --samples 1)
  J=1
else
  DEVICE=(--device cuda)
  TASKS_ARGS=(--min-tokens 128 --max-tokens 1024) TASKS_COUNT=6000 TASKS_MIX_COUNT=1500
  REPEATS_ARGS=(--count 6000)
  PK=(--lengths 1024,2048,4096,8192,16384,32768 --depths 0,25,50,75,100 --samples "${REPRO_PK_SAMPLES:-5}")
  NIAH=(--variant s-niah-1,s-niah-2,s-niah-3 --lengths 1024,2048,4096,8192,16384 --depths 0,25,50,75,100
        --samples 2 --max-new-tokens 32)
  BABI=(--variant qa1,qa2,qa3 --lengths 0,1024,2048,4096,8192,16384 --samples 10)
  LONG=(--lengths 32768 --bucket 1024 --samples 8)
  PPL_MAX=(--ppl-max-tokens 200000)
  PPL_SETS="tinystories gutenberg wikipedia"
  TUNE_PK=(--lengths 1024,2048,4096,8192,16384,32768 --depths 0,25,50,75,100 --samples 2)
fi
# The sharpen stage: the teacher's copying head (auto: the head with the most attention on the
# needle while the teacher copies it, scripts/diagnose_teacher.py; layer 3 head 3 for retriever13m)
# in the retrieval students, scales tried on eval seed 1 (the reported evals use seed 0).
SHARPEN_SPECS="${REPRO_SHARPEN-tasks_only_phi128_w8:auto tasks_then_generic_phi128_w8:auto tasks_only_phi128:auto tasks_only_phi128_full:auto tasks_then_generic_phi128_w8_lora1500:auto:smallest95 tasks_then_generic_phi128_w8_lora4000:auto:smallest95 tasks_then_generic_phi128_w8_window_lora1500:auto:smallest95 tasks_then_mixed_phi128_w8_window_lora1500:auto:smallest95 tasks_then_mixed_phi128_w8_lora1500:auto:smallest95}"
SHARPEN_SCALES="${REPRO_SHARPEN_SCALES:-2 3 4 6 8}"
SHARPEN_PICK="${REPRO_SHARPEN_PICK:-best}"
[[ $SHARPEN_PICK == best || $SHARPEN_PICK == smallest95 ]] || { echo "repro: REPRO_SHARPEN_PICK must be best or smallest95, got '$SHARPEN_PICK'" >&2; exit 1; }
TUNE_SEED=1
PY="${REPRO_PYTHON:-python3}"
ppl_text() {  # held-out text of a ppl set
  case $1 in
    tinystories) echo "$DATA/corpora/tinystories/tinystories_val_head.txt" ;;
    *) echo "$DATA/corpora/$1/$1_val.jsonl.xz" ;;
  esac
}
ONLY_ARGS=()
[[ -n "${REPRO_ONLY:-}" ]] && ONLY_ARGS=(--only "$REPRO_ONLY")

# runs "cmd i n" for i in 0..n-1 in parallel, then waits; fails if any failed.
parallel_shards() {
  local n=$1; shift
  local pids=() rc=0
  for ((i = 0; i < n; i++)); do "$@" "$i/$n" & pids+=($!); done
  for p in "${pids[@]}"; do wait "$p" || rc=1; done
  return $rc
}

# ---- 1. retrieval-task text for the data ablation -------------------------------------------
if has tasks; then
  stamp "tasks: retrieval-task corpus (training seeds, bAbI train files)"
  # configs/repro/students.yaml (tasks_data) reads runs/repro/tasks/tasks.jsonl, whatever REPRO_OUT is.
  mkdir -p runs/repro/tasks
  # the four files are independent: made in parallel
  tpids=()
  [[ -s runs/repro/tasks/tasks.jsonl ]] || { "$B" tasks --tokenizer "$TEACHER" --out runs/repro/tasks/tasks.jsonl \
    --count "$TASKS_COUNT" "${TASKS_ARGS[@]}" & tpids+=($!); }
  [[ -s runs/repro/tasks/tasks2.jsonl ]] || { "$B" tasks --tokenizer "$TEACHER" --out runs/repro/tasks/tasks2.jsonl --seed 2 \
    --count "$TASKS_COUNT" "${TASKS_ARGS[@]}" & tpids+=($!); }
  # a quarter of a file (seed 3): ~17 % retrieval text in the mixed stage 2 (students.yaml, tasks_then_mixed_*)
  [[ -s runs/repro/tasks/tasks_mix.jsonl ]] || { "$B" tasks --tokenizer "$TEACHER" --out runs/repro/tasks/tasks_mix.jsonl --seed 3 \
    --count "$TASKS_MIX_COUNT" "${TASKS_ARGS[@]}" & tpids+=($!); }
  [[ -s runs/repro/tasks/repeats.jsonl ]] || { python3 scripts/make_repeats.py --out runs/repro/tasks/repeats.jsonl \
    "${REPEATS_ARGS[@]}" "$DATA/corpora/gutenberg/gutenberg_train.jsonl.xz" "$DATA/corpora/wikipedia/wikipedia_train.jsonl.xz" & tpids+=($!); }
  trc=0
  for p in "${tpids[@]}"; do wait "$p" || trc=1; done
  ((trc == 0)) || { echo "repro: making the retrieval-task text failed (runs/repro/tasks)" >&2; exit 1; }
fi

# ---- 2. students (configs/repro/students.yaml) and the grid, shards sharing the GPU -------------
# Asked together, both sets of shards run at once (the GPU has room for all of them).
pids=()
if has train; then
  stamp "train: students, $J shards sharing the GPU"
  "$B" sweep configs/repro/students.yaml --dry-run "${SWEEP_SET[@]}" --output-dir "$R/students" "${ONLY_ARGS[@]}"
  parallel_shards "$J" "$B" sweep configs/repro/students.yaml "${SWEEP_SET[@]}" --output-dir "$R/students" \
    "${ONLY_ARGS[@]}" --shard & pids+=($!)
fi
if has grid; then
  stamp "grid: gate rank x conv width, $J shards"
  parallel_shards "$J" "$B" sweep configs/repro/grid.yaml "${SWEEP_SET[@]}" --output-dir "$R/grid" --shard & pids+=($!)
fi
train_rc=0
for p in "${pids[@]}"; do wait "$p" || train_rc=1; done
has train && "$B" sweep configs/repro/students.yaml "${SWEEP_SET[@]}" --output-dir "$R/students" "${ONLY_ARGS[@]}"
has grid && "$B" sweep configs/repro/grid.yaml "${SWEEP_SET[@]}" --output-dir "$R/grid"
((train_rc == 0)) || { echo "repro: a training shard failed (logs under $R)" >&2; exit 1; }

# ---- 2b. sharpen: the copying head's feature map x s after distillation ------------------------
# Not part of the paper's method (docs/results/NOTES.md, sixth round): a finished student's W_phi
# of one layer's heads is scaled (scripts/perturb_export.py) by each of SHARPEN_SCALES, each copy is
# scored on passkey at eval seed 1, and the pick (scripts/sharpen_pick.py: the spec's rule, else
# REPRO_SHARPEN_PICK) becomes the student <student>_L<layers>h<heads>x<s>, evaluated below like any
# other. Specs: student:auto[:rule] or student:layers:heads[:rule], rule best or smallest95.
# Resumes: a student whose pick exists with the same rule is skipped, scored copies are not scored
# again; a pick made by another rule is removed (with its eval records) and the pick made again.
if has sharpen && ! "$PY" -c 'import torch, safetensors.torch' 2>/dev/null; then
  stamp "sharpen: skipped: $PY cannot import torch and safetensors (set REPRO_PYTHON)"
elif has sharpen; then
  for spec in $SHARPEN_SPECS; do
    IFS=: read -r st f2 f3 f4 <<< "$spec"
    if [[ $f2 == auto ]]; then layers=auto heads="" rule="${f3:-$SHARPEN_PICK}"
    else layers=$f2 heads=$f3 rule="${f4:-$SHARPEN_PICK}"; fi
    [[ $rule == best || $rule == smallest95 ]] || { echo "repro: sharpen spec '$spec': the rule must be best or smallest95" >&2; exit 1; }
    src="$R/students/$st/export"
    [[ -f "$src/config.json" ]] || { stamp "sharpen: $st has no export, skipped"; continue; }
    if [[ $layers == auto ]]; then
      circuit="$R/sharpen/teacher_circuit.json"
      mkdir -p "$R/sharpen"
      [[ -s $circuit ]] || "$PY" scripts/diagnose_teacher.py --teacher "$TEACHER" --no-ablation --json "$circuit" \
        > "$R/sharpen/teacher_circuit.txt" 2>&1 || true
      read -r layers heads < <("$PY" -c 'import json, sys; h = json.load(open(sys.argv[1]))["copy_head"]; print(h["layer"], h["head"])' \
        "$circuit" 2>/dev/null) || true
      [[ -n "${heads:-}" ]] || { stamp "sharpen: $st: no copying head (diagnose_teacher.py needs transformers and sentencepiece; $R/sharpen/teacher_circuit.txt), skipped"; continue; }
      stamp "sharpen: the teacher's copying head is layer $layers head $heads ($circuit)"
    fi
    tag="L${layers//,/-}h${heads//,/-}"
    kept=0
    for d in "$R/students/${st}_${tag}x"*/; do
      [[ $(basename "$d") =~ ^${st}_${tag}x[0-9.]+$ && -f "$d/export/config.json" ]] || continue  # this stage's picks only
      made_by=$(cat "$d/perturb.txt" 2>/dev/null || true)
      prev=best; [[ $made_by == *"rule smallest95"* ]] && prev=smallest95   # picks before the rule was recorded: best
      if [[ $prev == "$rule" ]]; then kept=1; else
        stamp "sharpen: $(basename "$d") was picked by rule $prev, not $rule: removed, picking again"
        rm -rf "$d" "$R/eval/parts/$(basename "$d")"
      fi
    done
    ((kept)) && continue
    stamp "sharpen: $st, layers $layers heads $heads x {$SHARPEN_SCALES} on eval seed $TUNE_SEED, rule $rule"
    w="$R/sharpen/$st"; mkdir -p "$w"
    pids=()
    for sc in $SHARPEN_SCALES; do
      # perturb_export.py renames a complete copy into place: an existing model.safetensors is whole
      ( [[ -f "$w/x$sc/model.safetensors" ]] || "$PY" scripts/perturb_export.py "$src" "$w/x$sc" \
          --feature-scale "$sc" --layers "$layers" --heads "$heads" > "$w/perturb_x$sc.txt" 2>&1 ) &&
        "$B" eval --task passkey --models "$w/x$sc" "${TUNE_PK[@]}" --seed "$TUNE_SEED" "${DEVICE[@]}" \
          --out "$w/eval_x$sc" --no-plot --no-progress > "$w/eval_x$sc.txt" 2>&1 &
      pids+=($!)
    done
    failed=0
    for p in "${pids[@]}"; do wait "$p" || failed=1; done
    ((failed == 0)) || stamp "sharpen: $st: a scale failed (logs in $w); picking among the scored ones"
    # The pick from lawcat eval's own summaries (passkey.json per scale): scripts/sharpen_pick.py.
    best=$("$PY" scripts/sharpen_pick.py --rule "$rule" "$w" $SHARPEN_SCALES)
    [[ -n "$best" ]] || { stamp "sharpen: $st: no scale was scored, skipped"; continue; }
    n="${st}_${tag}x$best"
    mkdir -p "$R/students/$n"
    rm -rf "$R/students/$n/export.tmp" "$R/students/$n/export"
    cp -r "$w/x$best" "$R/students/$n/export.tmp" && mv "$R/students/$n/export.tmp" "$R/students/$n/export"
    echo "$PY scripts/perturb_export.py $src $R/students/$n/export --feature-scale $best --layers $layers --heads $heads  (picked on eval seed $TUNE_SEED over x{$SHARPEN_SCALES}, rule $rule)" \
      > "$R/students/$n/perturb.txt"
    stamp "sharpen: $st -> $n"
  done
fi

# ---- 3. evaluation: every model beside the teacher ---------------------------------------------
# One process per (model, task group) in parallel; each writes its own results.jsonl, then
# one call per task over all models reuses every record and writes the side-by-side table.
# With REPRO_ONLY the stage evaluates those students and their sharpen picks (<student>_L*), and
# the teacher only when no REPRO_PRIOR report already holds its records.
only_match() {  # run dir
  [[ -z "${REPRO_ONLY:-}" ]] && return 0
  local n s; n=$(basename "$1")
  for s in ${REPRO_ONLY//,/ }; do [[ $n == "$s" || $n == "${s}"_L* ]] && return 0; done
  return 1
}
models=()
[[ -n "${REPRO_ONLY:-}" && -n "${REPRO_PRIOR:-}" ]] || models+=("$TEACHER")
for d in "$R"/students/*/export "$R"/grid/*/export; do
  [[ -f "$d/config.json" ]] && only_match "$(dirname "$d")" && models+=("$d")
done
name_of() { [[ "$1" == "$TEACHER" ]] && echo teacher || basename "$(dirname "$1")"; }
eval_one() {  # model task-group
  local m=$1 g=$2 out="$R/eval/parts/$(name_of "$1")"
  case $g in
    passkey) "$B" eval --task passkey --models "$m" "${PK[@]}" "${DEVICE[@]}" --out "$out/passkey" --no-plot --no-progress ;;
    niah) "$B" eval --task niah --models "$m" "${NIAH[@]}" "${DEVICE[@]}" --out "$out/niah" --no-plot --no-progress ;;
    babilong)
      "$B" eval --task babilong --models "$m" "${BABI[@]}" "${DEVICE[@]}" --out "$out/babilong" --no-plot --no-progress
      "$B" eval --task babilong --raw-probe --models "$m" "${BABI[@]}" "${DEVICE[@]}" --out "$out/babilong_raw" --no-plot --no-progress ;;
    ppl)
      for p in $PPL_SETS; do
        "$B" eval --task ppl --models "$m" --lengths 1024 --ppl-documents --text "$(ppl_text $p)" "${PPL_MAX[@]}" \
          "${DEVICE[@]}" --out "$out/ppl_$p" --no-plot --no-progress
      done ;;
    longppl) "$B" eval --task longppl --models "$m" --text "$DATA/corpora/gutenberg/gutenberg_val.jsonl.xz" "${LONG[@]}" "${DEVICE[@]}" --out "$out/longppl" --no-plot --no-progress ;;
  esac
}
if has eval && ((${#models[@]} == 0)); then
  stamp "eval: no model to evaluate (REPRO_ONLY=${REPRO_ONLY:-} has no export under $R)"
elif has eval; then
  stamp "eval: ${#models[@]} models x passkey, niah, babilong, ppl, longppl ($J at a time)"
  jobs_list=()
  for m in "${models[@]}"; do for g in $EVAL_GROUPS; do jobs_list+=("$m|$g"); done; done
  running=0
  mkdir -p "$R/eval"
  for jg in "${jobs_list[@]}"; do
    eval_one "${jg%%|*}" "${jg##*|}" > "$R/eval/log_$(name_of "${jg%%|*}")_${jg##*|}.txt" 2>&1 &
    running=$((running + 1))
    if ((running >= J)); then wait -n || true; running=$((running - 1)); fi
  done 2>/dev/null || true
  wait || true
  # Side by side in lawcat's own tables and plots: merge each task's records, then one call over
  # all models (every record reused). The report below reads the parts directly.
  for t in passkey niah babilong babilong_raw ppl_tinystories ppl_gutenberg ppl_wikipedia longppl; do
    mkdir -p "$R/eval/all/$t"
    cat "$R"/eval/parts/*/"$t"/results.jsonl > "$R/eval/all/$t/results.jsonl" 2>/dev/null || true
  done
  ms=$(IFS=,; echo "${models[*]}")
  ev() { [[ " $EVAL_GROUPS " == *" $1 "* ]]; }
  ev passkey && "$B" eval --task passkey --models "$ms" "${PK[@]}" "${DEVICE[@]}" --out "$R/eval/all/passkey" --no-progress || true
  ev niah && "$B" eval --task niah --models "$ms" "${NIAH[@]}" "${DEVICE[@]}" --out "$R/eval/all/niah" --no-progress || true
  if ev babilong; then
    "$B" eval --task babilong --models "$ms" "${BABI[@]}" "${DEVICE[@]}" --out "$R/eval/all/babilong" --no-progress || true
    "$B" eval --task babilong --raw-probe --models "$ms" "${BABI[@]}" "${DEVICE[@]}" --out "$R/eval/all/babilong_raw" --no-progress || true
  fi
  if ev ppl; then
    for p in $PPL_SETS; do
      "$B" eval --task ppl --models "$ms" --lengths 1024 --ppl-documents --text "$(ppl_text $p)" "${PPL_MAX[@]}" \
        "${DEVICE[@]}" --out "$R/eval/all/ppl_$p" --no-progress --no-plot || true
    done
  fi
  ev longppl && "$B" eval --task longppl --models "$ms" --text "$DATA/corpora/gutenberg/gutenberg_val.jsonl.xz" "${LONG[@]}" "${DEVICE[@]}" --out "$R/eval/all/longppl" --no-progress || true
  true
fi

# ---- 4. docs/results ------------------------------------------------------------------------------
if has report; then
  stamp "report: $DOCS"
  python3 scripts/repro_report.py --runs "$R" --docs "$DOCS" ${REPRO_PRIOR:+--prior "$REPRO_PRIOR"}
  [[ -f docs/results/NOTES.md && "$DOCS" != docs/results ]] && cp docs/results/NOTES.md "$DOCS/" || true
fi
stamp "done"
