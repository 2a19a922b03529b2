# NCCL data parallel (src/train/distributed_nccl.cpp, LibTorch's c10d::ProcessGroupNCCL).
#
# ProcessGroupNCCL itself is compiled into libtorch_cuda.so; what the torch wheel does
# not ship is nccl.h, which ProcessGroupNCCL.hpp includes. The wheel depends on the pip
# package nvidia-nccl-cuXX (same site-packages), whose nvidia/nccl/include/nccl.h is the
# header of the libnccl.so.2 torch loads. The header must be that version: NCCL types
# (ncclConfig_t in ProcessGroupNCCL::Options) are laid out by it on both sides.
#
# Sets LAWCAT_HAVE_NCCL (ON/OFF) and LAWCAT_NCCL_INCLUDE_DIR. Looked for only when the
# CUDA kernels are built (LAWCAT_HAVE_CUDA) and the torch build has CUDA (torch_cuda).
# Where: -DLAWCAT_NCCL_INCLUDE_DIR=..., else the torch Python's nvidia.nccl package
# (Python3_EXECUTABLE, which scripts/setup.sh passes, else python3 on PATH), else
# <site-packages>/nvidia/nccl/include beside the torch the build found.
option(LAWCAT_WITH_NCCL "NCCL data parallel when the CUDA kernels are built and nccl.h is found" ON)
set(LAWCAT_HAVE_NCCL OFF)
if(LAWCAT_WITH_NCCL AND LAWCAT_HAVE_CUDA AND TARGET torch_cuda)
  if(Python3_EXECUTABLE)
    set(_nccl_py "${Python3_EXECUTABLE}")
  else()
    find_program(LAWCAT_NCCL_PYTHON NAMES python3 python)
    set(_nccl_py "${LAWCAT_NCCL_PYTHON}")
  endif()
  set(_nccl_hint "")
  set(_nccl_torch_version "")
  if(_nccl_py)
    # Line 1: the package's include dir (nvidia.nccl is a namespace package: __path__,
    # not __file__). Line 2: the NCCL version torch reports (its runtime library).
    execute_process(
      COMMAND "${_nccl_py}" -c [=[
import os
try:
    import nvidia.nccl as n
    print(os.path.join(list(n.__path__)[0], "include"))
except Exception:
    print("")
try:
    import torch
    v = torch.cuda.nccl.version()
    print(".".join(str(x) for x in v) if isinstance(v, tuple) else "")
except Exception:
    print("")
]=]
      OUTPUT_VARIABLE _nccl_out ERROR_QUIET TIMEOUT 120)
    string(REPLACE "\n" ";" _nccl_lines "${_nccl_out}")
    list(LENGTH _nccl_lines _n)
    if(_n GREATER 0)
      list(GET _nccl_lines 0 _nccl_hint)
    endif()
    if(_n GREATER 1)
      list(GET _nccl_lines 1 _nccl_torch_version)
    endif()
  endif()
  find_path(LAWCAT_NCCL_INCLUDE_DIR nccl.h
    HINTS ${_nccl_hint} "${TORCH_INSTALL_PREFIX}/../nvidia/nccl/include"
    NO_DEFAULT_PATH
    DOC "nccl.h matching the libnccl that torch loads (the pip package nvidia-nccl)")
  if(LAWCAT_NCCL_INCLUDE_DIR AND EXISTS "${LAWCAT_NCCL_INCLUDE_DIR}/nccl.h")
    file(STRINGS "${LAWCAT_NCCL_INCLUDE_DIR}/nccl.h" _nccl_defs REGEX "^#define NCCL_(MAJOR|MINOR|PATCH) ")
    string(REGEX REPLACE ".*NCCL_MAJOR ([0-9]+).*" "\\1" _maj "${_nccl_defs}")
    string(REGEX REPLACE ".*NCCL_MINOR ([0-9]+).*" "\\1" _min "${_nccl_defs}")
    string(REGEX REPLACE ".*NCCL_PATCH ([0-9]+).*" "\\1" _pat "${_nccl_defs}")
    set(_nccl_header_version "${_maj}.${_min}.${_pat}")
    if(_nccl_torch_version AND NOT _nccl_torch_version STREQUAL _nccl_header_version)
      message(WARNING "lawcat: ${LAWCAT_NCCL_INCLUDE_DIR}/nccl.h is NCCL ${_nccl_header_version} but torch uses "
                      "${_nccl_torch_version}; NCCL data parallel disabled (set LAWCAT_NCCL_INCLUDE_DIR to the "
                      "matching header)")
    else()
      set(LAWCAT_HAVE_NCCL ON)
      if(NOT _nccl_torch_version)
        set(_nccl_torch_version "not checked: no Python with torch")
      endif()
      message(STATUS "lawcat: NCCL data parallel on (nccl.h ${_nccl_header_version} in ${LAWCAT_NCCL_INCLUDE_DIR}; "
                     "torch's NCCL ${_nccl_torch_version})")
    endif()
  else()
    message(STATUS "lawcat: nccl.h not found (pip package nvidia-nccl beside torch); "
                   "GPU data parallel uses the store all-reduce")
  endif()
else()
  message(STATUS "lawcat: NCCL data parallel off (needs LAWCAT_WITH_NCCL, the CUDA kernels and a CUDA torch)")
endif()

# lawcat_use_nccl(<target> <source>): compile that one source with ProcessGroupNCCL
# available and link libtorch_cuda (where the ProcessGroupNCCL symbols are).
function(lawcat_use_nccl target source)
  if(NOT LAWCAT_HAVE_NCCL)
    return()
  endif()
  set_source_files_properties(${source} TARGET_DIRECTORY ${target} PROPERTIES
    COMPILE_DEFINITIONS "LAWCAT_HAVE_NCCL=1;USE_C10D_NCCL"
    INCLUDE_DIRECTORIES "${LAWCAT_NCCL_INCLUDE_DIR}")
  target_link_libraries(${target} PUBLIC torch_cuda)
endfunction()
