// Chunked normalized gated linear attention (LAWCAT step 6), differentiable.
//
//   S_t = Diag(exp(g_t)) S_{t-1} + k_t v_t^T          [F, V] per head, fp32
//   z_t = Diag(exp(g_t)) z_{t-1} + k_t                [F]
//   y_t = q_t^T S_t / (q_t^T z_t + eps)               (normalize = true)
//   y_t = q_t^T S_t                                   (normalize = false)
//
// q, k are the feature-mapped φ(q̃), φ(k̃) with H heads; v and the log-gates g
// (≤ 0) have Hkv heads, shared by the H / Hkv query heads of a group (indexed,
// never materialized). State and accumulation are fp32 whatever the input dtype.
// One dispatch point: CPU tensors take the chunked ATen path, CUDA tensors the
// csrc_kernels kernels.
#pragma once
#include <ATen/ATen.h>

#include <optional>

namespace lawcat::ops {

struct GlaOptions {
  int64_t chunk_size = 64;    // C
  bool normalize = true;
  double eps = 1e-10;
};

struct GlaResult {
  at::Tensor y;        // [B, T, H, V], dtype of v
  at::Tensor state;    // S_T [B, H, F, V] fp32
  at::Tensor normalizer;  // z_T [B, H, F] fp32
};

// q, k: [B, T, H, F]; v: [B, T, Hkv, V]; g: [B, T, Hkv, F] (fp32, ≤ 0);
// initial_state: [B, H, F, V] fp32 and initial_normalizer [B, H, F] fp32 (both or neither).
// Differentiable w.r.t. q, k, v, g and the initial state/normalizer.
GlaResult chunk_gla(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                    const at::Tensor& g, const std::optional<at::Tensor>& initial_state = {},
                    const std::optional<at::Tensor>& initial_normalizer = {},
                    const GlaOptions& options = {});

// One decoding step (no autograd): q, k: [B, H, F]; v: [B, Hkv, V]; g: [B, Hkv, F];
// state [B, H, F, V] and normalizer [B, H, F] (fp32) are updated in place. Returns y [B, H, V].
at::Tensor gla_step(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                    const at::Tensor& g, at::Tensor& state, at::Tensor& normalizer,
                    const GlaOptions& options = {});

}  // namespace lawcat::ops
