#!/usr/bin/env bash
# Chaos test of resume: N random SIGKILLs across both stages (distill, lora) of a CPU
# quickstart run with tiny step counts, each followed by `lawcat distill --resume`;
# then the final metrics (without timings) and the export's bytes are compared with an
# uninterrupted run of the same config. Exits non-zero on any difference.
#
# Usage: scripts/chaos.sh [N]                 (default N = 20 kills)
# Environment:
#   LAWCAT_BIN        the binary (default build/lawcat)
#   CHAOS_CONFIG      run config (default configs/quickstart.yaml)
#   CHAOS_DIR         scratch folder (default /tmp/lawcat_chaos; emptied first)
#   CHAOS_DISTILL     distill steps (default 6), CHAOS_LORA lora steps (default 4)
#   CHAOS_SEED        seed of the kill times (default 1)
# Checkpoints are saved every step (save_every=1) so each resume has something to
# continue from; kills land uniformly in [0.3 s, 0.7 x the reference run's wall time]
# after each start. A run that finishes before N kills is compared and started over, so
# every kill is followed by a comparison of the run it interrupted.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
N="${1:-20}"
BIN="${LAWCAT_BIN:-$ROOT/build/lawcat}"
CONFIG="${CHAOS_CONFIG:-$ROOT/configs/quickstart.yaml}"
DIR="${CHAOS_DIR:-/tmp/lawcat_chaos}"
RANDOM="${CHAOS_SEED:-1}"
SETS=(--set "distill.steps=${CHAOS_DISTILL:-6}" --set "lora.steps=${CHAOS_LORA:-4}"
      --set distill.eval_every=2 --set lora.eval_every=2 --set distill.save_every=1 --set lora.save_every=1
      --set distill.val_batches=1 --set lora.val_batches=1 --set "data.cache_dir=$DIR/cache")
log() { echo "[chaos] $*"; }

rm -rf "$DIR"
mkdir -p "$DIR"
cd "$ROOT"   # the config's relative paths (../shared/data) are relative to the checkout
run() {  # run <output_dir> [--resume]: one lawcat distill, its log appended to <output_dir>.log
  local out="$1"
  shift
  LAWCAT_THREADS=1 "$BIN" distill "$CONFIG" "${SETS[@]}" --set "output_dir=$out" --no-progress "$@" \
    >>"$out.log" 2>&1
}

log "reference run (uninterrupted): $DIR/ref"
t0=$(date +%s.%N)
run "$DIR/ref"
ref_s=$(echo "$(date +%s.%N) - $t0" | bc)
log "reference run took ${ref_s}s"
# Kills land in [0.3 s, 0.7 x the reference time] after each start (a resumed run has
# less left to do, so later delays would mostly find it finished).
max_ms=$(printf '%.0f' "$(echo "$ref_s * 700" | bc)")

# compare <run dir>: its metrics (without timings) and every file of its export, byte for
# byte, against the uninterrupted reference run. Returns 1 on any difference.
compare() {
  local run_dir="$1" bad=0 stage f
  for stage in distill lora; do
    if ! python3 - "$DIR/ref/$stage/metrics.jsonl" "$run_dir/$stage/metrics.jsonl" <<'EOF'
import json, sys
def rows(p):
    out = []
    for line in open(p):
        j = json.loads(line)
        for k in ("tokens_per_s", "elapsed_s"):
            j.pop(k, None)
        out.append(j)
    return out
a, b = rows(sys.argv[1]), rows(sys.argv[2])
if a != b:
    print(f"metrics differ: {sys.argv[1]} ({len(a)} lines) vs {sys.argv[2]} ({len(b)} lines)")
    for x, y in zip(a, b):
        if x != y:
            print("  first difference:", x, "vs", y)
            break
    sys.exit(1)
EOF
    then bad=1; else log "  $stage/metrics.jsonl: equal ($(wc -l <"$run_dir/$stage/metrics.jsonl") lines, timings left out)"; fi
  done
  for f in "$DIR/ref/export"/*; do
    if cmp -s "$f" "$run_dir/export/$(basename "$f")"; then
      log "  export/$(basename "$f"): identical bytes"
    else
      log "  export/$(basename "$f"): DIFFERS"
      bad=1
    fi
  done
  return $bad
}

out="$DIR/chaos"
kills=0 distill_kills=0 lora_kills=0 attempts=0 restarts=0 compared_kills=0 fail=0
while ((kills < N)); do
  ((++attempts))
  resume=()
  [[ -f "$out/config.yaml" ]] && resume=(--resume)
  if [[ -f "$out/export/model.safetensors" && -f "$out/lora/done.json" ]]; then
    # More kills than a run lasts: check this finished run, then start over.
    log "run $((restarts + 1)) finished after $compared_kills kill(s) ($kills so far); comparing, then starting over"
    compare "$out" || fail=1
    rm -rf "$out"
    resume=()
    ((++restarts))
    compared_kills=0
  fi
  # Started directly (not through a shell function), so that $! is lawcat itself.
  LAWCAT_THREADS=1 "$BIN" distill "$CONFIG" "${SETS[@]}" --set "output_dir=$out" --no-progress "${resume[@]}" \
    >>"$out.log" 2>&1 &
  pid=$!
  delay_ms=$((300 + (RANDOM * 32768 + RANDOM) % (max_ms > 300 ? max_ms - 300 : 1)))
  sleep "$(printf '%d.%03d' $((delay_ms / 1000)) $((delay_ms % 1000)))"
  if kill -0 "$pid" 2>/dev/null; then
    stage=distill
    [[ -f "$out/distill/done.json" ]] && stage=lora
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    ((++kills))
    ((++compared_kills))
    if [[ $stage == distill ]]; then ((++distill_kills)); else ((++lora_kills)); fi
    ck=$(ls -d "$out/$stage/checkpoints"/step-* 2>/dev/null | tail -n 1 || true)
    log "kill $kills/$N after ${delay_ms} ms in $stage (newest checkpoint: ${ck##*/})"
  else
    wait "$pid" || { log "FAILED: a run exited with an error (see $out.log)"; exit 1; }
  fi
done
log "finishing with --resume"
run "$out" --resume || { log "FAILED: the final resume exited with an error (see $out.log)"; exit 1; }
log "run $((restarts + 1)) finished after $compared_kills kill(s); comparing"
compare "$out" || fail=1

log "$kills SIGKILLs ($distill_kills in distill, $lora_kills in lora) over $attempts starts, each resumed;" \
    "in $((restarts + 1)) runs, each compared when finished:" \
    "metrics and export $([[ $fail == 0 ]] && echo "equal to the uninterrupted run every time" || echo "DIFFER")"
exit $fail
