// Helpers shared by the Conv1D kernels: channel mapping for the GQA repeat, vector
// loads of kVec consecutive channels into fp32 registers, launch-shape choices.
#pragma once
#include "api.h"
#include "common.cuh"
#include "static_switch.h"

namespace lawcat::kernels::conv1d {

constexpr int kThreads = 128;  // threads per CTA, one channel vector each
constexpr int kTile = 64;      // time steps per thread

// Input channel read by output channel c (repeat > 1: output head h reads input head h / repeat).
__device__ __forceinline__ int in_channel(const Conv1dParams& p, int c) {
  if (p.repeat == 1) return c;
  const int head = c / p.head_dim;
  return (head / p.repeat) * p.head_dim + (c - head * p.head_dim);
}

template <typename T, int kVec>
__device__ __forceinline__ void load_vec(const T* src, float (&dst)[kVec]) {
  if constexpr (kVec * sizeof(T) == 16) {
    uint4 raw = __ldg(reinterpret_cast<const uint4*>(src));
    const T* e = reinterpret_cast<const T*>(&raw);
#pragma unroll
    for (int i = 0; i < kVec; ++i) dst[i] = to_float(e[i]);
  } else {
#pragma unroll
    for (int i = 0; i < kVec; ++i) dst[i] = to_float(src[i]);
  }
}

template <typename T, int kVec>
__device__ __forceinline__ void store_vec(T* dst, const float (&src)[kVec]) {
  if constexpr (kVec * sizeof(T) == 16) {
    uint4 raw;
    T* e = reinterpret_cast<T*>(&raw);
#pragma unroll
    for (int i = 0; i < kVec; ++i) e[i] = from_float<T>(src[i]);
    *reinterpret_cast<uint4*>(dst) = raw;
  } else {
#pragma unroll
    for (int i = 0; i < kVec; ++i) dst[i] = from_float<T>(src[i]);
  }
}

// 16-byte vectors when every row start and channel block is aligned, else scalars.
inline bool can_vectorize(const Conv1dParams& p, int elem_size) {
  const int vec = 16 / elem_size;
  auto aligned = [](const void* ptr) { return reinterpret_cast<uintptr_t>(ptr) % 16 == 0; };
  return p.channels % vec == 0 && p.head_dim % vec == 0 && p.x_batch_stride % vec == 0 &&
         p.x_row_stride % vec == 0 && aligned(p.x) && (p.out == nullptr || aligned(p.out)) &&
         (p.dout == nullptr || aligned(p.dout)) && (p.dx == nullptr || aligned(p.dx));
}

}  // namespace lawcat::kernels::conv1d
