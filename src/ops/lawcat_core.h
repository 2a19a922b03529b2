// The LAWCAT attention core (docs/architecture.md, "The LAWCAT layer", steps 2-6) as ops,
// the layer's one seam to the kernels.
//
// Layer level (model/lawcat_attention.cpp makes one of these calls per forward):
//   lawcat_core(inputs, weights, options, state)       training, prefill (state out), no-grad
//   lawcat_core_step(inputs, weights, options, state)  one decoding step (T = 1, no autograd)
//   lawcat_features(...)                               conv + RoPE + φ + gate only (the window
//                                                      hybrid, model/window_hybrid.h, sums itself)
// lawcat_core picks the path: on CUDA without autograd the fused forward kernel (or the fused
// prologue + the GLA kernel for shapes the fused kernel does not take); on CUDA in training the
// fused forward + backward (the tensor-level lawcat_core below); otherwise the separate ops
// (conv, φ, gate, chunk_gla) on any device. A fused kernel error turns the fused prefill off
// for the process (logged); LAWCAT_NO_FUSED_PREFILL=1 turns it off from the start.
//
// Tensor level: from the projections q [B, T, H, D], k, v [B, T, Hkv, D] and the gate's
// low-rank activations a = W1 x [B, T, R] to y [B, T, H, D]: causal conv of q and of k (per
// query head filters, the kv head indexed), Hedgehog feature map φ, gate
// log α = logsigmoid(a W2^T + b) / tau, normalized GLA. Differentiable w.r.t. every tensor argument.
// The tensor-level lawcat_core takes the fused CUDA kernels (one forward, one backward: no intermediate in
// memory) where lawcat_core_fused_supported says so; lawcat_core_unfused composes the
// separate ops (any device and dtype) and is also the fused op's fallback for gates
// beyond the single-reference range.
#pragma once
#include <ATen/ATen.h>

namespace lawcat::ops {

struct LawcatCoreOptions {
  double tau = 16.0, eps = 1e-10;
  bool normalize = true;
  int64_t chunk_size = 64;  // C of chunk_gla (the separate-ops path)
};

// What the layer computed: its input and the projections (flat heads).
struct LawcatCoreInputs {
  at::Tensor x;         // [B, T, hidden] the layer's input (the gate reads it)
  at::Tensor q;         // [B, T, H*D]
  at::Tensor k, v;      // [B, T, Hkv*D]
  at::Tensor cos, sin;  // RoPE tables [T, D] (or [B, T, D]) for q, k after the conv (attention.rope); undefined = none
  // Left padding: [B, T] bool, true = a real token (pads first in a row); undefined = all real.
  // Pads leave the state untouched: q, k, v are zeroed before the conv (the conv sees zeros
  // before a row's first real token), and φ(k~) and log α are 0 there (no decay, nothing added
  // to S or z). Always the separate ops (the fused CUDA kernels take no mask).
  at::Tensor valid;
};

// The layer's LAWCAT parameters (the layer owns them; undefined = that part is off).
struct LawcatCoreWeights {
  at::Tensor conv_q, conv_k;  // [H*D, W] per query head; undefined: no conv
  at::Tensor conv_v;          // [Hkv*D, W]; undefined: no conv on v
  at::Tensor wphi;            // [H, D, f] (φ has F = 2f dims); gives H and D
  at::Tensor w1;              // [R, hidden] gate down (no bias); undefined: no gate (log α = 0)
  at::Tensor w2, b2;          // [Hkv*F, R], [Hkv*F] gate up
};

// A sequence's running state: prefill writes it, decode steps roll it. Constant in length.
struct LawcatCoreState {
  at::Tensor S;             // [B, H, F, D] fp32
  at::Tensor z;             // [B, H, F] fp32
  at::Tensor conv_q_cache;  // [B, H*D, W-1] last inputs of each conv
  at::Tensor conv_k_cache;  // [B, H*D, W-1] (k repeated to the query heads)
  at::Tensor conv_v_cache;  // [B, Hkv*D, W-1]
  int64_t seen = 0;         // tokens of the sequence so far
};

// The GLA inputs of the core: φ(q~), φ(k~) [B, T, H, F] in v's dtype, v [B, T, Hkv, D]
// (conv'd with conv_v), log α [B, T, Hkv, F] fp32.
struct LawcatFeatures {
  at::Tensor phiq, phik, v, g;
};

// y [B, T, H, D] (v's dtype; the fused paths: q's). With `state` the T tokens continue the
// state's sequence and the state is updated (S, z, conv caches, seen); without, they are a
// whole sequence. Differentiable w.r.t. the inputs and weights (autograd on).
at::Tensor lawcat_core(const LawcatCoreInputs& inputs, const LawcatCoreWeights& weights,
                       const LawcatCoreOptions& options, LawcatCoreState* state = nullptr);
// One decoding step: inputs with T = 1, autograd off; rolls the conv caches and (S, z) in
// place. y [B, 1, H, D].
at::Tensor lawcat_core_step(const LawcatCoreInputs& inputs, const LawcatCoreWeights& weights,
                            const LawcatCoreOptions& options, LawcatCoreState& state);
// Conv (caches in `state` when given; a one-token step rolls them), RoPE, φ and gate, without
// the GLA sum. (S, z) and `seen` are left alone.
LawcatFeatures lawcat_features(const LawcatCoreInputs& inputs, const LawcatCoreWeights& weights,
                               const LawcatCoreOptions& options, LawcatCoreState* state = nullptr);

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
