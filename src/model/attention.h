// The teacher's token mixer: grouped-query softmax attention with RoPE, as
// Hugging Face LlamaAttention / MistralAttention / Qwen2Attention / Qwen3Attention.
//
//   q = x Wq (+ bq) -> [B, H, T, D],  k = x Wk (+ bk), v = x Wv (+ bv) -> [B, Hkv, T, D]
//   q, k <- q_norm(q), k_norm(k)           Qwen3: RMSNorm over D per head (weight [D])
//   q, k <- rope(q), rope(k) at positions offset..offset+T-1
//   y = softmax(q k^T / sqrt(D) + causal mask) v   (kv head h/g serves query head h)
//        a sliding window (Mistral's layers, Qwen's "sliding_attention" layers) also masks
//        keys j <= i - window
//   out = Wo concat_h(y) (+ bo)
//
// `projections` returns q and k after the biases and norms (before RoPE): what
// every path (the softmax teacher, the LAWCAT student) takes as "q" and "k".
//
// `attention_output` returns y before Wo, [B, T, H*D]: the distillation target.
// With a decode state (a KVCache) the new k, v are appended and the queries
// attend to every cached position; a windowed layer's cache keeps only the last
// window - 1 positions before each append (memory bounded by the window).
#pragma once
#include <ATen/ATen.h>
#include <torch/arg.h>
#include <torch/nn/modules/linear.h>

#include <memory>
#include <optional>

#include "model/rmsnorm.h"
#include "model/token_mixer.h"

namespace lawcat::model {

struct LlamaAttentionOptions {
  LlamaAttentionOptions(int64_t hidden_size, int64_t num_heads, int64_t num_kv_heads, int64_t head_dim)
      : hidden_size_(hidden_size), num_heads_(num_heads), num_kv_heads_(num_kv_heads),
        head_dim_(head_dim) {}
  TORCH_ARG(int64_t, hidden_size);
  TORCH_ARG(int64_t, num_heads);     // H
  TORCH_ARG(int64_t, num_kv_heads);  // Hkv, divides H
  TORCH_ARG(int64_t, head_dim);      // D
  TORCH_ARG(bool, bias) = false;     // q/k/v biases (Qwen2; Llama / Qwen3 with attention_bias)
  TORCH_ARG(bool, o_bias) = false;   // o_proj bias (Llama / Qwen3 with attention_bias)
  TORCH_ARG(bool, qk_norm) = false;  // Qwen3: q_norm / k_norm, RMSNorm over head_dim
  TORCH_ARG(double, norm_eps) = 1e-6;  // their eps (rms_norm_eps)
  TORCH_ARG(int64_t, window) = 0;    // sliding window (keys within the last `window` positions); 0 = none
};

class LlamaAttentionImpl : public TokenMixer {
 public:
  explicit LlamaAttentionImpl(const LlamaAttentionOptions& options);

  // hidden [B, T, hidden] -> o_proj(attention_output) [B, T, hidden]
  at::Tensor forward(const at::Tensor& hidden, const MixerContext& ctx) override;
  // hidden [B, T, hidden] -> softmax attention output before o_proj, [B, T, H*D].
  // Uses (and appends to) ctx.state when set, which must be a KVCache.
  at::Tensor attention_output(const at::Tensor& hidden, const MixerContext& ctx);
  // Projections with RoPE applied: q [B, H, T, D], k, v [B, Hkv, T, D].
  std::tuple<at::Tensor, at::Tensor, at::Tensor> qkv(const at::Tensor& hidden,
                                                    const MixerContext& ctx);
  // The projections (biases, Qwen3's q/k norms), no RoPE: q [B, T, H*D], k, v [B, T, Hkv*D].
  std::tuple<at::Tensor, at::Tensor, at::Tensor> projections(const at::Tensor& hidden);
  // attention_output from projections already computed (shared with LAWCAT in
  // distillation): q [B, T, H*D], k, v [B, T, Hkv*D] -> [B, T, H*D].
  at::Tensor attention_from_projections(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                        const MixerContext& ctx);

  std::unique_ptr<LayerState> make_state(int64_t batch) const override;
  std::string kind() const override { return "softmax"; }
  const LlamaAttentionOptions& options() const { return options_; }

  torch::nn::Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};
  RMSNorm q_norm{nullptr}, k_norm{nullptr};  // Qwen3 only, weight [D]

 private:
  LlamaAttentionOptions options_;
};
using LlamaAttention = std::shared_ptr<LlamaAttentionImpl>;

// at::scaled_dot_product_attention with its cuDNN backend switched off for the call (the
// setting restored, also on error): for decoding, where cuDNN's per-shape plan costs more than
// the attention. q [B, H, T, D], k, v [B, Hkv, S, D], mask broadcastable to [B, H, T, S] or
// nullopt (never an undefined tensor: SDPA rejects that), gqa when H != Hkv.
at::Tensor sdpa_without_cudnn(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                              const std::optional<at::Tensor>& mask, bool gqa);

// Causal softmax attention where the T queries are the last T of S = past + T
// positions: q [B, H, T, D], k, v [B, Hkv, S, D] (H a multiple of Hkv) -> [B, H, T, D].
// at::scaled_dot_product_attention with is_causal when past == 0, an explicit
// bottom-right causal mask when 1 < T < S, and for one query (decoding, T == 1) on
// CUDA in 16 bits SDPA with the cuDNN backend off (see attention.cpp), elsewhere two
// batched products with the kv heads indexed, not repeated (fp32 scores and softmax).
// window > 0: query i (position S - T + i) sees only keys j > S - T + i - window (sliding
// window, as transformers' sliding_window_overlay); an explicit mask, or for T == 1 the
// last `window` keys.
// key_valid [B, S] bool (left-padded batches; undefined = every key real): keys with false are
// masked for every query, except a query's own position (a pad query sees itself only, so no
// row is fully masked and pad rows stay finite); an explicit mask on every path but the CPU
// one-query path, which masks its fp32 scores.
at::Tensor causal_softmax_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                    int64_t window = 0, const at::Tensor& key_valid = {});

// RoPE for inference: the same rotation as apply_rope in three passes instead of
// six (x * cos, then each half += the other half * ±sin). x [B, h, T, D] (any
// strides), cos/sin [T, D] (or [B, T, D]: per-row positions) -> a new tensor laid out like x. Differentiable inputs
// (grad mode on and x requiring grad) go through apply_rope.
at::Tensor apply_rope_fast(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin);


}  // namespace lawcat::model
