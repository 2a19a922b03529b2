#!/usr/bin/env bash
# Now scripts/gpu.sh (same stage names; this name's default: build test sanitize bench).
[[ $# -eq 0 ]] && set -- build test sanitize bench
exec "$(dirname "${BASH_SOURCE[0]}")/gpu.sh" "$@"
