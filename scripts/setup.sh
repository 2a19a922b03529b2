#!/usr/bin/env bash
# Sets up a machine for lawcat and builds it. Idempotent; a re-run is fast.
#   1. Debian packages (apt-get, when running as root on Debian/Ubuntu and something is missing)
#   2. LibTorch: the torch wheel from PyPI in a virtualenv kept OUTSIDE the clone
#      ($LAWCAT_CACHE, default ~/.cache/lawcat), reused by every clone and CI run;
#      on a machine whose python3 already has torch (the GPU machine), that one is used.
#   3. CMake configure + build (Release, Ninja, ccache) into ./build (or $LAWCAT_BUILD_DIR).
# Usage: scripts/setup.sh [--no-build] [extra cmake -D options...]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${LAWCAT_CACHE:-$HOME/.cache/lawcat}"
BUILD_DIR="${LAWCAT_BUILD_DIR:-$ROOT/build}"
TORCH_VERSION="${LAWCAT_TORCH_VERSION:-2.11.0}"
DO_BUILD=1
CMAKE_EXTRA=()
for arg in "$@"; do
  case "$arg" in
    --no-build) DO_BUILD=0 ;;
    -D*) CMAKE_EXTRA+=("$arg") ;;
    *) echo "setup.sh: unknown argument '$arg'" >&2; exit 2 ;;
  esac
done
log() { echo "[setup] $*"; }

# ---- 1. system packages -------------------------------------------------
PKGS=(build-essential cmake ninja-build ccache pkg-config python3-venv
      libsentencepiece-dev sentencepiece libyaml-cpp-dev libspdlog-dev libfmt-dev
      catch2 nlohmann-json3-dev libcli11-dev libpcre2-dev libicu-dev libopenblas0-openmp
      gnuplot-nox fortunes-min clang-14 libclang-rt-14-dev
      liblzma-dev zlib1g-dev libzstd-dev xz-utils zstd gzip)
missing=()
if command -v dpkg-query >/dev/null; then
  for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
fi
if ((${#missing[@]})); then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    log "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # Packages a distribution lacks (e.g. libcli11-dev on some images) are skipped, not fatal.
    if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
      for p in "${missing[@]}"; do
        apt-get install -y -qq --no-install-recommends "$p" >/dev/null || log "warning: could not install $p"
      done
    fi
  else
    log "warning: missing packages (${missing[*]}); install them as root"
  fi
fi

# ---- 2. LibTorch from the torch wheel -------------------------------------
PY=""
if python3 -c 'import torch' 2>/dev/null; then
  PY="$(command -v python3)"
  log "using the torch already installed for $PY"
else
  VENV="$CACHE/venv"
  if ! "$VENV/bin/python" -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$TORCH_VERSION')" 2>/dev/null; then
    log "creating $VENV with torch==$TORCH_VERSION from PyPI (one-time, several GB)"
    mkdir -p "$CACHE"
    python3 -m venv "$VENV"
    PIP_CACHE_DIR="$CACHE/pip" "$VENV/bin/pip" install -q --upgrade pip
    PIP_CACHE_DIR="$CACHE/pip" "$VENV/bin/pip" install -q "torch==$TORCH_VERSION" numpy
  fi
  PY="$VENV/bin/python"
  # Independent reference implementations the tests compare against (HF
  # transformers, safetensors, tokenizers), and sentencepiece for the diagnosis scripts that
  # scripts/repro.sh's sharpen stage runs (test_repro). Tests skip with a message without them.
  if ! "$PY" -c 'import transformers, safetensors, tokenizers, sentencepiece' 2>/dev/null; then
    log "installing test references into $VENV (transformers, safetensors, tokenizers, sentencepiece)"
    PIP_CACHE_DIR="$CACHE/pip" "$VENV/bin/pip" install -q transformers safetensors tokenizers sentencepiece \
      || log "warning: could not install the Python test references; those tests will skip"
  fi
fi
TORCH_PREFIX="$("$PY" -c 'import torch.utils; print(torch.utils.cmake_prefix_path)')"
log "LibTorch: $("$PY" -c 'import torch; print(torch.__version__)') ($TORCH_PREFIX)"

# CLI11 is header-only; where no package provides it, the GPU-machine scripts carry it in .devdeps.
if [[ ! -f /usr/include/CLI/CLI.hpp && ! -f "$ROOT/.devdeps/include/CLI/CLI.hpp" ]]; then
  log "error: CLI11 headers not found (Debian: libcli11-dev)"; exit 1
fi

# ---- 3. configure + build ---------------------------------------------------
export CCACHE_DIR="${CCACHE_DIR:-$CACHE/ccache}"
# Paths relative to the checkout, so a fresh clone (CI) hits the cache of another clone.
export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$ROOT}"
export CCACHE_NOHASHDIR=true
export CCACHE_MAXSIZE="${CCACHE_MAXSIZE:-10G}"
if [[ ! -f "$BUILD_DIR/build.ninja" ]] || [[ ${#CMAKE_EXTRA[@]} -gt 0 ]]; then
  log "configuring $BUILD_DIR"
  cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_PREFIX_PATH="$TORCH_PREFIX" -DPython3_EXECUTABLE="$PY" "${CMAKE_EXTRA[@]}" >/dev/null
fi
if ((DO_BUILD)); then
  log "building (this takes a while the first time; ccache makes later builds fast)"
  cmake --build "$BUILD_DIR" -j "$(nproc)"
  log "done: $BUILD_DIR/lawcat"
fi
