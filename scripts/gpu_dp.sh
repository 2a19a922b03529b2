#!/usr/bin/env bash
# Now scripts/gpu.sh's dp stages (build -> dp-build, test -> dp-test; default: gpu.sh dp).
[[ $# -eq 0 ]] && set -- build test smoke
s=(); for a in "$@"; do case $a in build) s+=(dp-build) ;; test) s+=(dp-test) ;; *) s+=("$a") ;; esac; done
exec "$(dirname "${BASH_SOURCE[0]}")/gpu.sh" "${s[@]}"
