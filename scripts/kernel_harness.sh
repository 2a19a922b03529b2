#!/usr/bin/env bash
# Now scripts/gpu.sh harness: kernel_harness.sh [check|bench|all] [extra nvcc flags].
HARNESS_MODE="${1:-all}" HARNESS_NVCC_FLAGS="${*:2}" exec "$(dirname "${BASH_SOURCE[0]}")/gpu.sh" harness
