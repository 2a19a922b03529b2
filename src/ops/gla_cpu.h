// CPU (ATen) implementation of chunked normalized GLA behind ops/gla.h, with the
// same signatures as the CUDA bindings in ops/cuda_ops.h. No autograd here: the
// autograd Function in gla.cpp calls these. Inputs are assumed checked.
//
// Shapes: q, k [B, T, H, F]; v [B, T, Hkv, V]; g [B, T, Hkv, F] (log-gates <= 0);
// s0 [B, H, F, V], z0 [B, H, F] (undefined = zero initial state); dy [B, T, H, V];
// dS_T [B, H, F, V], dz_T [B, H, F] (undefined = no gradient from the final state).
//
// Dtypes: computed in fp32 (fp64 when any of q, k, v, g is fp64, for gradient
// checks); y in v's dtype; S_T, z_T in the compute dtype; gradients in their
// input's dtype.
//
// Memory is O(T): per chunk of C tokens, temporaries of [B, H, C, C, F] (the
// element-wise intra-chunk decay block), plus, in the backward, the chunk-start
// states [T / C, B, H, F, V] recomputed by one forward sweep.
// Threads: one loop over chunks; every step is a batched ATen op over
// (batch, kv head, query head in group, ...), which ATen spreads over the
// intra-op threads (at::set_num_threads) when the tensors are large enough.
// v and the gates are indexed per kv head and broadcast over the group, never
// repeated to H heads.
#pragma once
#include <ATen/ATen.h>

#include <tuple>

#include "ops/gla.h"

namespace lawcat::ops::cpu {

// Returns (y, S_T, z_T).
std::tuple<at::Tensor, at::Tensor, at::Tensor> chunk_gla_fwd(
    const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& g,
    const at::Tensor& s0, const at::Tensor& z0, const GlaOptions& options);

// Returns (dq, dk, dv, dg, ds0, dz0); ds0 / dz0 undefined when s0 / z0 were.
// dy may be undefined (no gradient from y).
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> chunk_gla_bwd(
    const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& g,
    const at::Tensor& s0, const at::Tensor& z0, const at::Tensor& dy, const at::Tensor& dS_T,
    const at::Tensor& dz_T, const GlaOptions& options);

// One decode step: q, k [B, H, F]; v [B, Hkv, V]; g [B, Hkv, F]; state [B, H, F, V] and
// normalizer [B, H, F] updated in place (computed in the state's dtype). Returns y [B, H, V]
// in v's dtype.
at::Tensor gla_step(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                    const at::Tensor& g, at::Tensor& state, at::Tensor& normalizer,
                    const GlaOptions& options);

}  // namespace lawcat::ops::cpu
