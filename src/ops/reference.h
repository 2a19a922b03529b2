// Plain-ATen oracles: the token-by-token recurrence and the direct convolution,
// written with differentiable ATen ops so autograd through them gives reference
// gradients. They compute in the inputs' dtype: pass float64 for a test oracle.
// Independent of the chunked/CUDA paths; never used by them.
#pragma once
#include <ATen/ATen.h>

#include <optional>
#include <tuple>

namespace lawcat::ops::ref {

// q, k: [B, T, H, F]; v: [B, T, Hkv, V]; g: [B, T, Hkv, F] (log-gates ≤ 0);
// s0: [B, H, F, V], z0: [B, H, F] (optional). Returns (y [B, T, H, V], S_T, z_T).
std::tuple<at::Tensor, at::Tensor, at::Tensor> gla_recurrent_ref(
    const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& g,
    const std::optional<at::Tensor>& s0 = {}, const std::optional<at::Tensor>& z0 = {},
    bool normalize = true, double eps = 1e-10);

// x: [B, T, C], w: [C, W], cache: [B, C, W-1] (optional, inputs before t = 0). Returns [B, T, C].
at::Tensor causal_conv1d_ref(const at::Tensor& x, const at::Tensor& w,
                             const std::optional<at::Tensor>& cache = {});

}  // namespace lawcat::ops::ref
