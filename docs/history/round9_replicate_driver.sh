#!/usr/bin/env bash
# The round-9 replicate (tasks_then_generic_phi128_w8_window_lora1500_seed1), prepared in session 16
# (no machine came that session). Here (repo root, no GPU):
#   bash docs/history/round9_replicate_driver.sh prepare
# makes the exact task corpora of the committed rounds (lawcat tasks as of 9a20135, md5 in
# docs/results/NOTES.md) into runs/repro/tasks/*.jsonl.xz and the train pack without the files only
# `lawcat tasks` reads, so that tree + carry fit 64 MiB; move docs/results/round9_window_checkpoints.tar
# and records.tar.xz out of the tree for the call (restore them after). Then one device call
# (carry [".devdata", ".devdeps", "runs/repro/tasks"]) running
#   bash docs/history/round9_replicate_driver.sh device
# (~8 minutes: build ~130 s, stage 1 ~75 s, stage 2 ~190 s, sharpen tuning ~35 s, passkey if time is left),
# and on the warm machine a second call with REPRO_PACK=eval's .devdata for the rest of the protocol.
set -euo pipefail
cd "$(dirname "$0")/../.."
case "${1:-}" in
  prepare)
    REPRO_PACK=train scripts/gpu_repro.sh pack
    rm -rf .devdata/corpora/moby_dick .devdata/eval/babi   # read by `lawcat tasks` only
    files=(src/eval/task_corpus.h src/eval/task_corpus.cpp src/cli/cmd_tasks.cpp)
    git diff --quiet HEAD -- "${files[@]}" || { echo "prepare: uncommitted changes in ${files[*]}" >&2; exit 1; }
    t=$(mktemp -d)
    git checkout 9a20135 -- src/eval/task_corpus.h src/eval/task_corpus.cpp src/cli/cmd_tasks.cpp
    cmake --build build -j2 --target lawcat
    build/lawcat tasks --tokenizer ../shared/data/models/retriever13m --out "$t/tasks.jsonl" --count 6000 --min-tokens 128 --max-tokens 1024
    build/lawcat tasks --tokenizer ../shared/data/models/retriever13m --out "$t/tasks2.jsonl" --seed 2 --count 6000 --min-tokens 128 --max-tokens 1024
    git checkout HEAD -- src/eval/task_corpus.h src/eval/task_corpus.cpp src/cli/cmd_tasks.cpp
    cmake --build build -j2 --target lawcat
    md5sum "$t"/tasks.jsonl "$t"/tasks2.jsonl   # e6f56c36..., f61d224f... (NOTES)
    mkdir -p runs/repro/tasks && rm -f runs/repro/tasks/*.jsonl runs/repro/tasks/*.xz
    xz -T2 -9 -c "$t/tasks.jsonl" > runs/repro/tasks/tasks.jsonl.xz
    xz -T2 -9 -c "$t/tasks2.jsonl" > runs/repro/tasks/tasks2.jsonl.xz
    rm -rf "$t" ;;
  device)
    S0=$(date +%s)
    export REPRO_ONLY=tasks_then_generic_phi128_w8_window_lora1500_seed1 REPRO_PRIOR=docs/results
    md5sum runs/repro/tasks/*
    REPRO_SHARPEN="$REPRO_ONLY:3:3:smallest95" REPRO_SHARPEN_SCALES="2 3 4 6" REPRO_TIMEOUT_train=330 \
      REPRO_TIMEOUT_sharpen=70 scripts/gpu_repro.sh build train sharpen 2>&1 | tail -45
    left=$(( 560 - ($(date +%s) - S0) ))
    if (( left > 40 )); then
      mkdir -p "$OUT/ev"
      OUT=$OUT/ev REPRO_EVAL=passkey REPRO_TIMEOUT_eval=$((left - 10)) scripts/gpu_repro.sh eval 2>&1 | tail -25
    fi ;;
  *) echo "usage: $0 prepare|device" >&2; exit 2 ;;
esac
