#!/usr/bin/env bash
# Now scripts/gpu.sh's e2e stages (build -> e2e-build, tests -> eval-cuda; default: gpu.sh e2e).
[[ $# -eq 0 ]] && set -- build tests prefill train
s=(); for a in "$@"; do case $a in build) s+=(e2e-build) ;; tests) s+=(eval-cuda) ;; *) s+=("$a") ;; esac; done
exec "$(dirname "${BASH_SOURCE[0]}")/gpu.sh" "${s[@]}"
