#!/usr/bin/env bash
# A/B timing on the GPU machine, in one call: builds this tree (gpu_run.sh build) and a baseline
# tree in build-ab-src/ (git-ignored; fill it here with `git archive <commit> | tar -x -C
# build-ab-src` and name it in the device call's carry), runs the fused-core tests on the new build,
# then `bench attention` for new and base alternately, two rounds (same machine, same run).
# SEQS: sequence lengths (default 16384). Logs and JSON under $OUT.
set -u
export OUT
scripts/gpu_run.sh build > $OUT/gpu_build.log 2>&1 || { tail -40 $OUT/gpu_build.log; exit 1; }
tail -3 $OUT/gpu_build.log
T0=$(date +%s)
( cd build-ab-src && [[ -f build-gpu/build.ninja ]] || cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_PREFIX_PATH="$(python3 -c 'import torch.utils;print(torch.utils.cmake_prefix_path)')" > $OUT/base_cfg.log 2>&1
  TORCH_CUDA_ARCH_LIST=9.0 timeout 300 cmake --build build-gpu -j16 --target lawcat > $OUT/base_build.log 2>&1 ) &
BPID=$!
timeout 300 build-gpu/tests/test_cuda "lawcat_core*" > $OUT/test_core.log 2>&1; echo "test rc=$?"; tail -3 $OUT/test_core.log
grep -E "FAILED|with expansion|rel err" $OUT/test_core.log | head -20
wait $BPID; echo "base build rc=$? after $(( $(date +%s) - T0 ))s"; tail -3 $OUT/base_build.log
for round in 1 2; do
  for v in new base; do
    bin=build-gpu/lawcat; [[ $v == base ]] && bin=build-ab-src/build-gpu/lawcat
    $bin bench attention --seqlens ${SEQS:-16384} --no-sdpa --reps 25 --json $OUT/ab_${v}_$round.json > $OUT/ab_${v}_$round.log 2>&1
    echo "== $v round $round"; grep -E "^ +(1B|7B)" $OUT/ab_${v}_$round.log
  done
done
