// Causal depthwise Conv1D over time (LAWCAT step 3), differentiable.
//   out[b, t, c] = sum_{j=0..W-1} w[c, j] * x[b, t - W + 1 + j, c]   (x = 0 before t = 0)
// x: [B, T, C] (any float dtype; fp32 accumulation), w: [C, W]. The tap w[:, W-1]
// multiplies the current token. One dispatch point: CPU ATen path or CUDA kernel.
#pragma once
#include <ATen/ATen.h>

#include <optional>

namespace lawcat::ops {

// Differentiable w.r.t. x and w. `initial_cache` [B, C, W-1] holds the W-1 inputs
// before t = 0 (oldest first) when continuing a stream; zeros when absent.
at::Tensor causal_conv1d(const at::Tensor& x, const at::Tensor& w,
                         const std::optional<at::Tensor>& initial_cache = {});

// GQA-indexed: x [B, T, Hkv*D] holds kv heads of D = head_dim channels, w [H*D, W] one filter
// per query head (H = Hkv * repeat); query head h reads kv head h / repeat. Equal to
// causal_conv1d of x with every kv head repeated `repeat` times ([B, T, H*D] out); on CUDA
// (repeat > 1) the kernel indexes the kv head instead of materialising the repeat. No cache
// (whole sequences, training). Differentiable w.r.t. x (grads summed over the repeats) and w.
at::Tensor causal_conv1d(const at::Tensor& x, const at::Tensor& w, int64_t repeat, int64_t head_dim);

// Cache after a sequence: the last W-1 inputs [B, C, W-1] (zero-padded on the left).
at::Tensor causal_conv1d_cache(const at::Tensor& x, int64_t width,
                               const std::optional<at::Tensor>& initial_cache = {});

// One decoding step (no autograd): x_t [B, C]; cache [B, C, W-1] rolls in place.
at::Tensor causal_conv1d_step(const at::Tensor& x_t, const at::Tensor& w, at::Tensor& cache);

}  // namespace lawcat::ops
