#include "model/attention.h"

#include "model/rope.h"
#include "util/error.h"

namespace lawcat::model {

LlamaAttentionImpl::LlamaAttentionImpl(const LlamaAttentionOptions& o) : options_(o) {
  TORCH_CHECK(o.num_heads() > 0 && o.num_kv_heads() > 0 && o.num_heads() % o.num_kv_heads() == 0,
              "LlamaAttention: num_heads (", o.num_heads(), ") must be a positive multiple of num_kv_heads (",
              o.num_kv_heads(), ")");
  using torch::nn::LinearOptions;
  const int64_t D = o.hidden_size(), q_dim = o.num_heads() * o.head_dim(),
                kv_dim = o.num_kv_heads() * o.head_dim();
  q_proj = register_module("q_proj", torch::nn::Linear(LinearOptions(D, q_dim).bias(o.bias())));
  k_proj = register_module("k_proj", torch::nn::Linear(LinearOptions(D, kv_dim).bias(o.bias())));
  v_proj = register_module("v_proj", torch::nn::Linear(LinearOptions(D, kv_dim).bias(o.bias())));
  o_proj = register_module("o_proj", torch::nn::Linear(LinearOptions(q_dim, D).bias(false)));
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> LlamaAttentionImpl::qkv(const at::Tensor& hidden,
                                                                      const MixerContext& ctx) {
  TORCH_CHECK(hidden.dim() == 3 && hidden.size(2) == options_.hidden_size(),
              "LlamaAttention: hidden must be [B, T, ", options_.hidden_size(), "], got ", hidden.sizes());
  const int64_t B = hidden.size(0), T = hidden.size(1), H = options_.num_heads(),
                Hkv = options_.num_kv_heads(), Dh = options_.head_dim();
  at::Tensor q = q_proj(hidden).view({B, T, H, Dh}).transpose(1, 2);    // [B, H, T, D]
  at::Tensor k = k_proj(hidden).view({B, T, Hkv, Dh}).transpose(1, 2);  // [B, Hkv, T, D]
  at::Tensor v = v_proj(hidden).view({B, T, Hkv, Dh}).transpose(1, 2);  // [B, Hkv, T, D]
  TORCH_CHECK(ctx.cos.defined() && ctx.cos.size(0) == T,
              "LlamaAttention: MixerContext.cos must be [T=", T, ", D], got ",
              ctx.cos.defined() ? ctx.cos.sizes() : at::IntArrayRef{});
  q = apply_rope(q, ctx.cos, ctx.sin);
  k = apply_rope(k, ctx.cos, ctx.sin);
  return {q, k, v};
}

at::Tensor LlamaAttentionImpl::attention_output(const at::Tensor& hidden, const MixerContext& ctx) {
  auto [q, k, v] = qkv(hidden, ctx);
  if (ctx.state) {
    auto* cache = dynamic_cast<KVCache*>(ctx.state);
    TORCH_CHECK(cache, "LlamaAttention: decode state of this layer is not a KVCache");
    std::tie(k, v) = cache->append(k, v);  // [B, Hkv, S, D]
  }
  at::Tensor y = causal_softmax_attention(q, k, v);  // [B, H, T, D]
  const int64_t B = hidden.size(0), T = hidden.size(1);
  return y.transpose(1, 2).reshape({B, T, options_.num_heads() * options_.head_dim()});
}

at::Tensor LlamaAttentionImpl::forward(const at::Tensor& hidden, const MixerContext& ctx) {
  return o_proj(attention_output(hidden, ctx));
}

std::unique_ptr<LayerState> LlamaAttentionImpl::make_state(int64_t /*batch*/) const {
  return std::make_unique<KVCache>();
}

at::Tensor causal_softmax_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  TORCH_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4, "causal_softmax_attention: q ", q.sizes(),
              ", k ", k.sizes(), ", v ", v.sizes(), " must be [B, H, T, D]");
  const int64_t T = q.size(2), S = k.size(2), H = q.size(1), Hkv = k.size(1);
  TORCH_CHECK(S >= T && v.size(2) == S && Hkv > 0 && H % Hkv == 0 && v.size(1) == Hkv,
              "causal_softmax_attention: q ", q.sizes(), ", k ", k.sizes(), ", v ", v.sizes());
  const bool gqa = H != Hkv;
  if (S == T) {
    return at::scaled_dot_product_attention(q, k, v, {}, 0.0, /*is_causal=*/true, std::nullopt, gqa);
  }
  if (T == 1) {
    return at::scaled_dot_product_attention(q, k, v, {}, 0.0, /*is_causal=*/false, std::nullopt, gqa);
  }
  // Query i sits at position past + i and sees keys j <= past + i.
  const int64_t past = S - T;
  auto lopts = at::TensorOptions().dtype(at::kLong).device(q.device());
  at::Tensor mask = at::arange(S, lopts).unsqueeze(0) <= (at::arange(T, lopts) + past).unsqueeze(1);  // [T, S]
  return at::scaled_dot_product_attention(q, k, v, mask, 0.0, /*is_causal=*/false, std::nullopt, gqa);
}

}  // namespace lawcat::model
