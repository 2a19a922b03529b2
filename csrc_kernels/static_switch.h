// Runtime values -> compile-time template parameters (the flash-attention idiom).
//   LAWCAT_DTYPE_SWITCH(dtype, T, ...)   : DType::kF32/kBF16/kF16 -> float/__nv_bfloat16/__half
//   LAWCAT_HEADDIM_SWITCH(d, kD, ...)    : 64 or 128 (callers round smaller dims up)
//   LAWCAT_BOOL_SWITCH(cond, kName, ...)
// An unsupported value makes the enclosing launcher return cudaErrorInvalidValue.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#define LAWCAT_BOOL_SWITCH(COND, NAME, ...) \
  [&] {                                     \
    if (COND) {                             \
      constexpr bool NAME = true;           \
      return __VA_ARGS__();                 \
    } else {                                \
      constexpr bool NAME = false;          \
      return __VA_ARGS__();                 \
    }                                       \
  }()

#define LAWCAT_DTYPE_SWITCH(DTYPE, T, ...)                                  \
  [&]() -> cudaError_t {                                                    \
    switch (DTYPE) {                                                        \
      case ::lawcat::kernels::DType::kF32: { using T = float; return __VA_ARGS__(); }         \
      case ::lawcat::kernels::DType::kBF16: { using T = __nv_bfloat16; return __VA_ARGS__(); } \
      case ::lawcat::kernels::DType::kF16: { using T = __half; return __VA_ARGS__(); }        \
    }                                                                       \
    return cudaErrorInvalidValue;                                           \
  }()

#define LAWCAT_HEADDIM_SWITCH(DIM, NAME, ...)                         \
  [&]() -> cudaError_t {                                              \
    if ((DIM) == 64) { constexpr int NAME = 64; return __VA_ARGS__(); }   \
    if ((DIM) == 128) { constexpr int NAME = 128; return __VA_ARGS__(); } \
    return cudaErrorInvalidValue;                                     \
  }()
