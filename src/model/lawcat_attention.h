// LAWCAT attention: the teacher's q/k/v/o projections (shared, frozen in
// stage 1), causal depthwise conv on q and k, a Hedgehog feature map φ shared
// by q and k, a low-rank data-dependent gate, normalized gated linear
// attention, no RoPE (docs/architecture.md, "The LAWCAT layer"; the paper, arXiv 2509.18467).
//
//   q = x Wq [B,T,H,d]; k = x Wk, v = x Wv [B,T,Hkv,d]; k repeated to H heads
//     (the teacher's projections() exactly: Qwen2's q/k/v biases, and Qwen3's per-head
//     q_norm / k_norm, which therefore sit before the conv and φ on the linear path)
//   q̃ = conv_q(q), k̃ = conv_k(k)             (width c, per channel)
//   φ(u) = [softmax(u Wφ_h); softmax(-u Wφ_h)]  (F = 2f dims, clamp ≥ 1e-12)
//   log α = logsigmoid(W2 W1 x + b) / τ        [B,T,Hkv,F], ≤ 0
//   y = chunk_gla(φ(q̃), φ(k̃), v, log α)         normalized
//   out = Wo concat_h(y)
//
// Modes: kStudent (the LAWCAT output), kTeacher (the original softmax
// attention, bit-identical to the teacher model), kDistill (computes both
// from the same hidden states, records the student's and teacher's pre-Wo
// outputs for the loss, and passes the TEACHER's output on).
#pragma once
#include <ATen/ATen.h>
#include <torch/nn/modules/linear.h>

#include <memory>
#include <vector>

#include "model/attention.h"
#include "model/lawcat_options.h"
#include "model/token_mixer.h"
#include "model/window_hybrid.h"
#include "ops/lawcat_core.h"

namespace lawcat::model {

// Decode state: (S, z) per head plus the conv tails; constant in context length
// (the window hybrid keeps its own lagged (S, z) and a ring of the last `window` tokens).
// ops::LawcatCoreState holds S [B, H, F, d], z [B, H, F] (fp32), the conv caches
// conv_q_cache / conv_k_cache [B, H*d, c-1], conv_v_cache [B, Hkv*d, c-1] and `seen`.
class LawcatState : public LayerState, public ops::LawcatCoreState {
 public:
  WindowHybridState window;  // window hybrid only (window > 0)
  int64_t memory_bytes() const override;
};

enum class MixerMode { kStudent, kTeacher, kDistill };

class LawcatAttentionImpl : public TokenMixer {
 public:
  // Takes over the teacher's projections (same Linear modules, so the same
  // parameter names: self_attn.q_proj.weight ...). The LAWCAT parameters are new.
  LawcatAttentionImpl(const LawcatOptions& options, const std::shared_ptr<LlamaAttentionImpl>& teacher);

  at::Tensor forward(const at::Tensor& hidden, const MixerContext& ctx) override;
  // The student's output before Wo, [B, T, H*d]. With ctx.state (a LawcatState)
  // the tokens continue the state's sequence and the state is updated.
  at::Tensor lawcat_output(const at::Tensor& hidden, const MixerContext& ctx);
  std::unique_ptr<LayerState> make_state(int64_t batch) const override;
  std::string kind() const override { return "lawcat"; }

  void set_mode(MixerMode mode) { mode_ = mode; }
  MixerMode mode() const { return mode_; }
  // kDistill: the last forward's pre-Wo outputs [B, T, H*d] (student keeps its graph).
  const at::Tensor& last_student() const { return last_student_; }
  const at::Tensor& last_teacher() const { return last_teacher_; }
  void clear_recorded();

  // The new (trainable in stage 1) parameters, by name relative to this module.
  std::vector<std::pair<std::string, at::Tensor>> lawcat_parameters() const;
  const LawcatOptions& options() const { return options_; }
  const std::shared_ptr<LlamaAttentionImpl>& teacher() const { return teacher_; }

  torch::nn::Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};
  RMSNorm q_norm{nullptr}, k_norm{nullptr};  // Qwen3: the teacher's (shared, same names)
  at::Tensor conv_q, conv_k, conv_v;   // [H*d, c], [H*d, c], [Hkv*d, c] (conv_v only with conv_on_v)
  at::Tensor feature_map;              // Wφ [H, d, f]
  torch::nn::Linear gate_down{nullptr};  // W1: hidden -> r, no bias
  torch::nn::Linear gate_up{nullptr};    // W2: r -> Hkv*F, bias b
  at::Tensor window_weight;            // [H] logits, σ(w_h) weighs the window part

 private:
  // lawcat_output from the projections q [B, T, H*d], k, v [B, T, Hkv*d] of x: one op call
  // (ops::lawcat_core, ops::lawcat_core_step, or the window hybrid's two).
  at::Tensor lawcat_core(const at::Tensor& x, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                         const MixerContext& ctx, LawcatState* st);
  ops::LawcatCoreWeights core_weights() const;
  ops::LawcatCoreOptions core_options() const;

  LawcatOptions options_;
  std::shared_ptr<LlamaAttentionImpl> teacher_;  // not registered: shares the projections
  MixerMode mode_ = MixerMode::kStudent;
  at::Tensor last_student_, last_teacher_;
};
using LawcatAttention = std::shared_ptr<LawcatAttentionImpl>;

}  // namespace lawcat::model
