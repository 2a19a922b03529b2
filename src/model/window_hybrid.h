// The LoLCATs sliding-window softmax hybrid of a LAWCAT layer (docs/architecture.md, "The LAWCAT layer"): softmax
// attention over the last W tokens plus gated linear attention over everything older, summed
// with one shared normalizer, the window weighed by σ(w_h) per head:
//
//   y_t = (σ_h Σ_{t-W<s≤t} e_ts v_s + (1-σ_h) Σ_{s≤t-W} A_ts v_s)
//       / (σ_h Σ_{t-W<s≤t} e_ts     + (1-σ_h) Σ_{s≤t-W} A_ts     + ε)
//   e_ts = exp(q_t·k_s/√d - max_{window} q_t·k/√d)       (RoPE'd teacher projections)
//   A_ts = Σ_f φq_t,f φk_s,f e^{G_t,f - G_s,f}             (G = cumulative log α, ≤ 0)
//
// With conv width 0, no gate and the window on, the layer is LoLCATs'.
//
// How it is computed (no loop over offsets, nothing subtracted):
// * softmax part, blocked: time is cut into blocks of W and each query block attends to
//   [previous block, own block] (2W keys) through two batched matmuls, the band
//   0 ≤ t - s < W masked in;
// * linear part, lagged: Σ_{s≤t-W} A_ts v_s is ops::chunk_gla of φq against the keys and
//   values delayed by W tokens, key s entering at u = s + W scaled by e^{G_u - G_s} ≤ 1 (the
//   decay over the W tokens it spent in the window; never overflows), so chunk_gla's own decay
//   e^{G_t - G_u} completes e^{G_t - G_s}. Denominator: the same with values 1.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>

namespace lawcat::model {

struct WindowHybridOptions {
  int64_t window = 64;      // W
  bool gate = true;         // false: g is all zeros (LoLCATs) and the delayed keys are not rescaled
  double eps = 1e-10;       // ε of the shared normalizer
  int64_t chunk_size = 64;  // of the linear sums (ops::chunk_gla)
  // chunk_gla calls for the linear numerator and denominator: 0 = by device: one call on
  // [v, 1] on CPU (its cost there is the [C, C, F] decays, whatever V), two on CUDA (its
  // kernels pad V to 64 / 128, so [v, 1] would double the head dim or exceed 128).
  int gla_calls = 0;
};

// What a decode state keeps for the window: the linear state of the tokens that left the window,
// and the last (up to) W tokens seen (the next token's window and the next key to leave it).
struct WindowHybridState {
  at::Tensor S;     // [B, H, F, d] fp32: Σ over tokens s ≤ t-W of φk_s v_sᵀ, decayed to t
  at::Tensor z;     // [B, H, F] fp32: the same for φk_s
  at::Tensor k;     // [B, Hkv, n, d] RoPE'd k of the last n ≤ W tokens (softmax part)
  at::Tensor v;     // [B, n, Hkv, d] their values
  at::Tensor phik;  // [B, n, H, F] their φk
  at::Tensor g;     // [B, n, Hkv, F] fp32 their log α
  at::Tensor valid; // [B, n] bool: which of them are real (left-padded batches; undefined = all)
  int64_t ring_size() const { return k.defined() ? k.size(2) : 0; }
  int64_t memory_bytes() const;
};

// q_rope [B, H, T, D], k_rope [B, Hkv, T, D] (the teacher's projections, RoPE applied when the
// model has it); v [B, T, Hkv, d]; phiq, phik [B, T, H, F]; g [B, T, Hkv, F] fp32 log α;
// window_weight [H] logits. H is a multiple of Hkv (query head h reads kv head h / (H/Hkv)).
// Math in fp32 (the linear sums in chunk_gla's precision for phiq's dtype); returns
// y [B, T, H, d] in v's dtype. Differentiable w.r.t. every tensor argument.
// With `state` the T tokens continue the state's sequence (prefill, one-token steps or longer
// continuations alike) and the state is updated; without, they are a whole sequence.
// `valid` [B, T] bool (left padding; undefined = all real): pad keys are masked out of the
// softmax part (kept masked in the state's ring); the caller gives pads φk = 0 and log α = 0
// (ops::lawcat_features does), so the linear part never sees them.
at::Tensor window_hybrid(const at::Tensor& q_rope, const at::Tensor& k_rope, const at::Tensor& v,
                         const at::Tensor& phiq, const at::Tensor& phik, const at::Tensor& g,
                         const at::Tensor& window_weight, const WindowHybridOptions& options,
                         WindowHybridState* state = nullptr, const at::Tensor& valid = {});

}  // namespace lawcat::model
