#!/usr/bin/env bash
# Now scripts/gpu.sh ab (builds this tree and build-ab-src/, SEQS as before).
exec "$(dirname "${BASH_SOURCE[0]}")/gpu.sh" ab
