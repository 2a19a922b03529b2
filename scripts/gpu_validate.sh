#!/usr/bin/env bash
# Now scripts/gpu.sh validate (prefill -> validate-prefill, train -> validate-train).
s=(validate); for a in "$@"; do case $a in prefill|train) s+=("validate-$a") ;; esac; done
exec "$(dirname "${BASH_SOURCE[0]}")/gpu.sh" "${s[@]}"
