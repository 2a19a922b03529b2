// CPU (ATen) implementation of the causal depthwise Conv1D behind ops/conv1d.h.
// Shapes as there: x [B, T, C], w [C, W], cache [B, C, W-1] (undefined = zeros).
//
// Dtype rule: computed in fp32 (fp64 when x or w is fp64, for gradient checks),
// out / dx in x's dtype, dw in w's dtype, dcache in the cache's dtype.
// No autograd here: these are the kernels the autograd Function in conv1d.cpp calls.
#pragma once
#include <ATen/ATen.h>

#include <tuple>

namespace lawcat::ops::cpu {

// Returns out [B, T, C].
at::Tensor causal_conv1d_fwd(const at::Tensor& x, const at::Tensor& w, const at::Tensor& cache);

// dout [B, T, C]. Returns (dx, dw, dcache); dcache undefined when cache was.
std::tuple<at::Tensor, at::Tensor, at::Tensor> causal_conv1d_bwd(const at::Tensor& x,
                                                                 const at::Tensor& w,
                                                                 const at::Tensor& cache,
                                                                 const at::Tensor& dout);

// x_t [B, C]; cache [B, C, W-1] rolls in place (oldest first). Returns out [B, C].
at::Tensor causal_conv1d_step(const at::Tensor& x_t, const at::Tensor& w, at::Tensor& cache);

}  // namespace lawcat::ops::cpu
