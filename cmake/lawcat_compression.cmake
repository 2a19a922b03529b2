# Compressed corpora (src/dataset/decompress.cpp): .xz through liblzma, .gz through
# zlib, .zst through libzstd. Each is optional: a build without one still works and
# reading such a file says which -dev package to install (Debian / Ubuntu:
# liblzma-dev, zlib1g-dev, libzstd-dev).
#
# lawcat_use_compression(<target>) links what was found into <target> and defines
# LAWCAT_HAVE_LZMA / LAWCAT_HAVE_ZLIB / LAWCAT_HAVE_ZSTD on it (privately: other code
# asks dataset::compression_built_in at run time).
option(LAWCAT_WITH_COMPRESSION "Read .xz / .gz / .zst corpora when the libraries are found" ON)
set(LAWCAT_HAVE_LZMA OFF)
set(LAWCAT_HAVE_ZLIB OFF)
set(LAWCAT_HAVE_ZSTD OFF)
if(LAWCAT_WITH_COMPRESSION)
  find_package(LibLZMA QUIET)
  if(LibLZMA_FOUND)
    set(LAWCAT_HAVE_LZMA ON)
  endif()
  find_package(ZLIB QUIET)
  if(ZLIB_FOUND)
    set(LAWCAT_HAVE_ZLIB ON)
  endif()
  # libzstd ships a pkg-config file everywhere; its CMake config only in newer packages.
  pkg_check_modules(ZSTD QUIET IMPORTED_TARGET GLOBAL libzstd)
  if(ZSTD_FOUND)
    set(LAWCAT_HAVE_ZSTD ON)
  endif()
endif()
foreach(_c LZMA ZLIB ZSTD)
  if(LAWCAT_WITH_COMPRESSION AND NOT LAWCAT_HAVE_${_c})
    set(_pkg_LZMA liblzma-dev)
    set(_pkg_ZLIB zlib1g-dev)
    set(_pkg_ZSTD libzstd-dev)
    message(WARNING "lawcat: ${_c} not found (${_pkg_${_c}}); compressed corpora of that kind are disabled")
  endif()
endforeach()
message(STATUS "lawcat: compressed corpora: xz ${LAWCAT_HAVE_LZMA}, gzip ${LAWCAT_HAVE_ZLIB}, zstd ${LAWCAT_HAVE_ZSTD}")

function(lawcat_use_compression target)
  if(LAWCAT_HAVE_LZMA)
    target_link_libraries(${target} PRIVATE LibLZMA::LibLZMA)
    target_compile_definitions(${target} PRIVATE LAWCAT_HAVE_LZMA=1)
  endif()
  if(LAWCAT_HAVE_ZLIB)
    target_link_libraries(${target} PRIVATE ZLIB::ZLIB)
    target_compile_definitions(${target} PRIVATE LAWCAT_HAVE_ZLIB=1)
  endif()
  if(LAWCAT_HAVE_ZSTD)
    target_link_libraries(${target} PRIVATE PkgConfig::ZSTD)
    target_compile_definitions(${target} PRIVATE LAWCAT_HAVE_ZSTD=1)
  endif()
endfunction()
