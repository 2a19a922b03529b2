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

// The LAWCAT core's prologue (docs/architecture.md, "The LAWCAT layer", steps 2-5) in the
// inputs' dtype: q [B, T, H, D],
// k [B, T, Hkv, D], a = W1 x [B, T, R], conv_q / conv_k [H*D, W], wphi [H, D, D/2],
// w2 [Hkv*D, R], b2 [Hkv*D] (optional) -> (φ(conv q), φ(conv k) with k's kv head repeated
// [B, T, H, D], log α [B, T, Hkv, D]).
std::tuple<at::Tensor, at::Tensor, at::Tensor> lawcat_prologue_ref(const at::Tensor& q, const at::Tensor& k,
                                                                   const at::Tensor& a, const at::Tensor& conv_q,
                                                                   const at::Tensor& conv_k, const at::Tensor& wphi,
                                                                   const at::Tensor& w2, const at::Tensor& b2,
                                                                   double tau = 16.0);
// The whole core: the prologue, then gla_recurrent_ref. Returns y [B, T, H, D].
at::Tensor lawcat_core_ref(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& a,
                           const at::Tensor& conv_q, const at::Tensor& conv_k, const at::Tensor& wphi,
                           const at::Tensor& w2, const at::Tensor& b2, bool normalize = true, double tau = 16.0,
                           double eps = 1e-10);

}  // namespace lawcat::ops::ref
