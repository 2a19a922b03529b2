#!/usr/bin/env bash
# Quick device iteration on the fused LAWCAT forward without LibTorch: compile
# tests/cuda/fused_fwd_harness.cu with the kernels it needs (nvcc only, ~1 min) and run
# its float64 checks and CUDA-event timings. Usage: scripts/kernel_harness.sh [check|bench|all] [extra nvcc flags]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUTDIR="${OUT:-$ROOT/out}"
mkdir -p "$OUTDIR"
BIN=/tmp/fused_fwd_harness
mode="${1:-all}"; shift || true
SRCS=("$ROOT/tests/cuda/fused_fwd_harness.cu" "$ROOT"/csrc_kernels/lawcat/fused_*.cu)
objs=(); pids=()
for s in "${SRCS[@]}"; do
  o="/tmp/harness_$(basename "$s" .cu).o"
  nvcc -O3 -std=c++17 -arch=sm_90 --expt-relaxed-constexpr -lineinfo -I "$ROOT/csrc_kernels" "$@" -c "$s" -o "$o" &
  objs+=("$o"); pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done
nvcc -arch=sm_90 "${objs[@]}" -o "$BIN"
"$BIN" "$mode"
