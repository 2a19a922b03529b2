// The LAWCAT attention core as one differentiable op (LAWCAT.md steps 2-6): from the
// projections q [B, T, H, D], k, v [B, T, Hkv, D] and the gate's low-rank activations
// a = W1 x [B, T, R] to y [B, T, H, D]: causal conv of q and of k (per query head filters,
// the kv head indexed), Hedgehog feature map φ, gate log α = logsigmoid(a W2^T + b) / tau,
// normalized GLA. Differentiable w.r.t. every tensor argument.
//
// lawcat_core takes the fused CUDA kernels (one forward, one backward: no intermediate in
// memory) where lawcat_core_fused_supported says so; lawcat_core_unfused composes the
// separate ops (any device and dtype) and is also the fused op's fallback for gates
// beyond the single-reference range.
#pragma once
#include <ATen/ATen.h>

namespace lawcat::ops {

struct LawcatCoreOptions {
  double tau = 16.0, eps = 1e-10;
  bool normalize = true;
};

// φ(u) = [softmax(u W_φ) ; softmax(-u W_φ)] clamped at 1e-12: u [B, T, H, d], wphi [H, d, f]
// -> [B, T, H, 2f] fp32.
at::Tensor hedgehog_feature_map(const at::Tensor& u, const at::Tensor& wphi);
// log α = logsigmoid(a W2^T + b) / tau: a [B, T, R] -> [B, T, Hkv, d] fp32 (b may be undefined).
at::Tensor low_rank_log_gate(const at::Tensor& a, const at::Tensor& w2, const at::Tensor& b2, double tau,
                             int64_t num_kv_heads);

bool lawcat_core_fused_supported(const at::Tensor& q, int64_t conv_width, int64_t gate_rank);
at::Tensor lawcat_core(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& a,
                       const at::Tensor& conv_q, const at::Tensor& conv_k, const at::Tensor& wphi, const at::Tensor& w2,
                       const at::Tensor& b2, const LawcatCoreOptions& options = {});
at::Tensor lawcat_core_unfused(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& a,
                               const at::Tensor& conv_q, const at::Tensor& conv_k, const at::Tensor& wphi,
                               const at::Tensor& w2, const at::Tensor& b2, const LawcatCoreOptions& options = {});

}  // namespace lawcat::ops
