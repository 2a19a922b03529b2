# Shared build settings for every lawcat library, test and tool.

# Everything C++ links this: LibTorch, logging, JSON, YAML, include roots.
add_library(lawcat_common INTERFACE)
target_include_directories(lawcat_common INTERFACE
  ${CMAKE_SOURCE_DIR}/src ${CMAKE_SOURCE_DIR}/csrc_kernels ${CLI11_INCLUDE_DIR})
target_link_libraries(lawcat_common INTERFACE
  ${TORCH_LIBRARIES} nlohmann_json::nlohmann_json yaml-cpp Threads::Threads ${CMAKE_DL_LIBS})
# LAWCAT_HAVE_CUDA is defined by lawcat_kernels (csrc_kernels/) for whoever links it.
target_compile_options(lawcat_common INTERFACE
  $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wno-unused-parameter -Wno-sign-compare>)

# One precompiled header (ATen, autograd, nn) reused by every target: the torch
# headers cost 15-30 s per file on 2 cores otherwise.
add_library(lawcat_pch OBJECT ${CMAKE_SOURCE_DIR}/cmake/pch_stub.cpp)
target_link_libraries(lawcat_pch PUBLIC lawcat_common)
target_precompile_headers(lawcat_pch PRIVATE ${CMAKE_SOURCE_DIR}/src/pch.h)

function(lawcat_use_pch target)
  target_precompile_headers(${target} REUSE_FROM lawcat_pch)
endfunction()

# lawcat_folder_library(<folder> DEPS ...): static library lawcat_<folder> from src/<folder>/*.cpp
function(lawcat_folder_library folder)
  cmake_parse_arguments(ARG "" "" "DEPS" ${ARGN})
  file(GLOB _srcs CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/${folder}/*.cpp)
  if(_srcs)
    add_library(lawcat_${folder} STATIC ${_srcs})
    target_link_libraries(lawcat_${folder} PUBLIC lawcat_common ${ARG_DEPS})
    lawcat_use_pch(lawcat_${folder})
  else()  # folder not written yet: keep the dependency graph intact
    add_library(lawcat_${folder} INTERFACE)
    target_link_libraries(lawcat_${folder} INTERFACE lawcat_common ${ARG_DEPS})
  endif()
endfunction()

# lawcat_add_executable(<name> <sources...>): the sources compile as a PIC object
# library so they can reuse the shared PCH (an executable's -fPIE would not match).
function(lawcat_add_executable name)
  add_library(${name}_objs OBJECT ${ARGN})
  target_link_libraries(${name}_objs PUBLIC lawcat_toolkit)
  lawcat_use_pch(${name}_objs)
  add_executable(${name} $<TARGET_OBJECTS:${name}_objs>)
  target_link_libraries(${name} PRIVATE ${name}_objs)
  lawcat_stdcxx_first(${name})
endfunction()

# The torch wheel's libtorch.so exports its own (broken for us: remove_all
# jumps to a null pointer) copy of std::filesystem. Put libstdc++ first in the
# executable's DT_NEEDED list so the dynamic linker binds those symbols to it.
function(lawcat_stdcxx_first target)
  target_link_options(${target} BEFORE PRIVATE "LINKER:--push-state,--no-as-needed" "-lstdc++" "LINKER:--pop-state")
endfunction()
