// CUDA implementations behind the ops' dispatch points (src/ops/gla.cpp,
// src/ops/conv1d.cpp). Thin bindings: check shapes/dtypes/devices (TORCH_CHECK
// naming the tensor), fill the csrc_kernels params structs, launch on the current
// stream, turn a cudaError_t into a TORCH_CHECK naming the op. Only declared
// when the CUDA kernels are built (LAWCAT_HAVE_CUDA); otherwise the dispatch points
// reject CUDA tensors through no_cuda.
#pragma once
#include <ATen/ATen.h>

#include <tuple>

#include "ops/gla.h"

#ifndef LAWCAT_HAVE_CUDA
namespace lawcat::ops {
[[noreturn]] inline void no_cuda(const char* op) {
  TORCH_CHECK(false, op, ": CUDA tensor given but lawcat was built without CUDA kernels");
}
}  // namespace lawcat::ops
#endif

#ifdef LAWCAT_HAVE_CUDA
namespace lawcat::ops::cuda {

// Shapes as in ops/gla.h. s0/z0 may be undefined tensors (zero initial state).
// Returns (y, S_T, z_T).
std::tuple<at::Tensor, at::Tensor, at::Tensor> chunk_gla_fwd(
    const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& g,
    const at::Tensor& s0, const at::Tensor& z0, const GlaOptions& options);

// dy: [B, T, H, V]; dS_T [B, H, F, V] / dz_T [B, H, F] may be undefined.
// Returns (dq, dk, dv, dg, ds0, dz0); ds0/dz0 undefined when s0/z0 were.
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> chunk_gla_bwd(
    const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& g,
    const at::Tensor& s0, const at::Tensor& z0, const at::Tensor& dy, const at::Tensor& dS_T,
    const at::Tensor& dz_T, const GlaOptions& options);

// One decode step; state/normalizer updated in place. Returns y [B, H, V].
at::Tensor gla_step(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                    const at::Tensor& g, at::Tensor& state, at::Tensor& normalizer,
                    const GlaOptions& options);

// x [B, T, C], w [C, W], cache [B, C, W-1] or undefined. Returns out [B, T, C].
at::Tensor causal_conv1d_fwd(const at::Tensor& x, const at::Tensor& w, const at::Tensor& cache);
// Returns (dx, dw, dcache); dcache undefined when cache was.
std::tuple<at::Tensor, at::Tensor, at::Tensor> causal_conv1d_bwd(
    const at::Tensor& x, const at::Tensor& w, const at::Tensor& cache, const at::Tensor& dout);
at::Tensor causal_conv1d_step(const at::Tensor& x_t, const at::Tensor& w, at::Tensor& cache);

// ---- extensions (kernel engineer) ----------------------------------------------------
// Packed variable-length sequences: q, k [1, Ttot, H, F]; v [1, Ttot, Hkv, V]; g [1, Ttot, Hkv, F];
// cu_seqlens [N+1] (int32/int64, any device; 0 = cu[0] <= ... <= cu[N] = Ttot): the state resets
// at each sequence start. s0 [N, H, F, V] / z0 [N, H, F] optional. Returns y [1, Ttot, H, V],
// S_T [N, H, F, V], z_T [N, H, F]; the backward takes dy [1, Ttot, H, V] and dS_T / dz_T per sequence.
std::tuple<at::Tensor, at::Tensor, at::Tensor> chunk_gla_fwd_varlen(
    const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& g,
    const at::Tensor& s0, const at::Tensor& z0, const at::Tensor& cu_seqlens, const GlaOptions& options);
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> chunk_gla_bwd_varlen(
    const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& g,
    const at::Tensor& s0, const at::Tensor& z0, const at::Tensor& dy, const at::Tensor& dS_T,
    const at::Tensor& dz_T, const at::Tensor& cu_seqlens, const GlaOptions& options);

// Conv1D with the GQA repeat done by indexing: x [B, T, Cin] holds Cin / head_dim heads; output
// head h (of C = Cin * repeat channels, w [C, W]) reads input head h / repeat. cache [B, Cin, W-1].
// The backward returns dx [B, T, Cin] (summed over the repeated heads), dw [C, W], dcache [B, Cin, W-1].
at::Tensor causal_conv1d_fwd(const at::Tensor& x, const at::Tensor& w, const at::Tensor& cache,
                             int64_t repeat, int64_t head_dim);
std::tuple<at::Tensor, at::Tensor, at::Tensor> causal_conv1d_bwd(
    const at::Tensor& x, const at::Tensor& w, const at::Tensor& cache, const at::Tensor& dout,
    int64_t repeat, int64_t head_dim);

// LAWCAT prologue, forward only (prefill / no-grad): q [B, T, H, D], k [B, T, Hkv, D], a [B, T, R]
// (contiguous, one dtype), conv_q / conv_k [H*D, W], wphi [H, D, D/2], w2 [Hkv*D, R], b2 [Hkv*D]
// (any float dtype; used in fp32). Returns (phi_q [B, T, H, D], phi_k [B, T, H, D] in q's dtype,
// g [B, T, Hkv, D] fp32): conv, Hedgehog feature map (clamped at 1e-12), logsigmoid gate / tau.
// lawcat_prologue_supported says which head dims / widths / ranks it takes (csrc_kernels/api.h's rule).
bool lawcat_prologue_supported(int64_t head_dim, int64_t width, int64_t rank);
std::tuple<at::Tensor, at::Tensor, at::Tensor> lawcat_prologue_fwd(
    const at::Tensor& q, const at::Tensor& k, const at::Tensor& a, const at::Tensor& conv_q,
    const at::Tensor& conv_k, const at::Tensor& wphi, const at::Tensor& w2, const at::Tensor& b2,
    double tau = 16.0);

// The whole LAWCAT attention core forward in one fused kernel (prefill / no-grad): causal conv,
// Hedgehog feature map, gate and normalized GLA from the projections. q [B, T, H, D], k, v
// [B, T, Hkv, D], a [B, T, R] (bf16 or fp16, one dtype; last dim contiguous), conv_q / conv_k
// [H*D, W], wphi [H, D, D/2], w2 [Hkv*D, R], b2 [Hkv*D] (any float dtype; used in fp32).
// Returns (y [B, T, H, D] in q's dtype, S_T [B, H, D, D], z_T [B, H, D] fp32).
// lawcat_core_fwd_supported says whether these shapes / dtypes take the fused kernel
// (csrc_kernels/api.h's lawcat_fwd_supported: head dim, width, rank, 16-bit inputs).
// With `saved` (training) it also keeps what lawcat_core_bwd reads.
struct LawcatCoreSaved {
  at::Tensor state_chunks, z_chunks, den;  // state / normalizer before every chunk, den + eps per token (fp32)
  at::Tensor qprime, kprime;               // Q' = φq e^{G - r}, K' = φk e^{r - G} per token (q's dtype;
                                           // K' only where the kernels read it: head dim 128)
};
bool lawcat_core_fwd_supported(const at::Tensor& q, int64_t width, int64_t rank);
std::tuple<at::Tensor, at::Tensor, at::Tensor> lawcat_core_fwd(
    const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& a, const at::Tensor& conv_q,
    const at::Tensor& conv_k, const at::Tensor& wphi, const at::Tensor& w2, const at::Tensor& b2, double tau = 16.0,
    double eps = 1e-10, bool normalize = true, LawcatCoreSaved* saved = nullptr);

// One decoding step of the whole LAWCAT core in one kernel (ops::lawcat_core_step's CUDA path):
// q [B, H*D], k, v [B, Hkv*D] (16-bit, one dtype; last dim contiguous), a = W1 x [B, R] fp32,
// conv_q / conv_k [H*D, W], wphi [H, D, D/2], w2 [Hkv*D, R], b2 [Hkv*D] (any float dtype; used
// in fp32). Rolls conv_q_cache / conv_k_cache [B, H*D, W-1] (q's dtype) and updates S [B, H, D, D],
// z [B, H, D] (fp32) in place. Returns y [B, H, D] in q's dtype. lawcat_step_fused_supported: the
// kernels' rule (csrc_kernels/api.h lawcat_step_supported).
bool lawcat_step_fused_supported(const at::Tensor& q, int64_t head_dim, int64_t width, int64_t rank);
at::Tensor lawcat_step_fused(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& a,
                             const at::Tensor& conv_q, const at::Tensor& conv_k, at::Tensor& conv_q_cache,
                             at::Tensor& conv_k_cache, const at::Tensor& wphi, const at::Tensor& w2,
                             const at::Tensor& b2, at::Tensor& S, at::Tensor& z, double tau, double eps,
                             bool normalize);

// The fused backward of lawcat_core_fwd (same inputs, its output y, the incoming dy and the
// saved tensors). Gradients are fp32, except dq (q's dtype); dlogit [B, T, Hkv, D] is w.r.t. the gate logits
// a W2^T + b (da and dW2 are two GEMMs away), db its row sums. extreme_chunks (device int) > 0 means
// some chunk's gates decayed beyond the single-reference range: the gradients are then not
// valid and the caller must use the unfused ops. Head dims 64 and 128, as the forward (see
// lawcat_core_bwd_supported).
struct LawcatCoreGrads {
  at::Tensor dq, dk, dv, dlogit, db, dconv_q, dconv_k, dwphi, extreme_chunks;
};
bool lawcat_core_bwd_supported(const at::Tensor& q, int64_t width, int64_t rank);
LawcatCoreGrads lawcat_core_bwd(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& a,
                                const at::Tensor& conv_q, const at::Tensor& conv_k, const at::Tensor& wphi,
                                const at::Tensor& w2, const at::Tensor& b2, double tau, double eps, bool normalize,
                                const at::Tensor& y, const at::Tensor& dy, const LawcatCoreSaved& saved);

}  // namespace lawcat::ops::cuda
#endif
