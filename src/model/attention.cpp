#include "model/attention.h"

#include <ATen/Context.h>
#include <ATen/core/grad_mode.h>

#include <cmath>
#include <utility>

#include "model/rope.h"
#include "ops/decode_attention.h"
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
  o_proj = register_module("o_proj", torch::nn::Linear(LinearOptions(q_dim, D).bias(o.o_bias())));
  if (o.qk_norm()) {  // Qwen3Attention registers them after the projections
    q_norm = register_module("q_norm", RMSNorm(RMSNormOptions(o.head_dim()).eps(o.norm_eps())));
    k_norm = register_module("k_norm", RMSNorm(RMSNormOptions(o.head_dim()).eps(o.norm_eps())));
  }
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> LlamaAttentionImpl::projections(const at::Tensor& hidden) {
  TORCH_CHECK(hidden.dim() == 3 && hidden.size(2) == options_.hidden_size(),
              "LlamaAttention: hidden must be [B, T, ", options_.hidden_size(), "], got ", hidden.sizes());
  at::Tensor q = q_proj(hidden), k = k_proj(hidden);  // [B, T, H*D], [B, T, Hkv*D]
  if (q_norm) {
    // Per head: [B, T, h, D] -> RMSNorm over D -> [B, T, h*D].
    const int64_t B = hidden.size(0), T = hidden.size(1), Dh = options_.head_dim();
    q = q_norm(q.view({B, T, options_.num_heads(), Dh})).reshape({B, T, options_.num_heads() * Dh});
    k = k_norm(k.view({B, T, options_.num_kv_heads(), Dh})).reshape({B, T, options_.num_kv_heads() * Dh});
  }
  return {q, k, v_proj(hidden)};  // [B, T, H*D], [B, T, Hkv*D] x2
}

namespace {
// q [B, T, H*D], k, v [B, T, Hkv*D] -> q [B, H, T, D], k, v [B, Hkv, T, D] with RoPE on q, k.
std::tuple<at::Tensor, at::Tensor, at::Tensor> heads_with_rope(const LlamaAttentionOptions& o, const at::Tensor& q_in,
                                                               const at::Tensor& k_in, const at::Tensor& v_in,
                                                               const MixerContext& ctx) {
  const int64_t B = q_in.size(0), T = q_in.size(1), H = o.num_heads(), Hkv = o.num_kv_heads(), Dh = o.head_dim();
  at::Tensor q = q_in.view({B, T, H, Dh}).transpose(1, 2);    // [B, H, T, D]
  at::Tensor k = k_in.view({B, T, Hkv, Dh}).transpose(1, 2);  // [B, Hkv, T, D]
  at::Tensor v = v_in.view({B, T, Hkv, Dh}).transpose(1, 2);  // [B, Hkv, T, D]
  TORCH_CHECK(ctx.cos.defined() && ctx.cos.size(-2) == T && (ctx.cos.dim() == 2 || ctx.cos.size(0) == B),
              "LlamaAttention: MixerContext.cos must be [T=", T, ", D], got ",
              ctx.cos.defined() ? ctx.cos.sizes() : at::IntArrayRef{});
  return {apply_rope_fast(q, ctx.cos, ctx.sin), apply_rope_fast(k, ctx.cos, ctx.sin), v};
}
}  // namespace

std::tuple<at::Tensor, at::Tensor, at::Tensor> LlamaAttentionImpl::qkv(const at::Tensor& hidden,
                                                                      const MixerContext& ctx) {
  auto [q, k, v] = projections(hidden);
  return heads_with_rope(options_, q, k, v, ctx);
}

at::Tensor LlamaAttentionImpl::attention_from_projections(const at::Tensor& q_in, const at::Tensor& k_in,
                                                          const at::Tensor& v_in, const MixerContext& ctx) {
  auto [q, k, v] = heads_with_rope(options_, q_in, k_in, v_in, ctx);
  const int64_t B = q_in.size(0), T = q_in.size(1);
  at::Tensor key_valid = ctx.valid;  // [B, T] or, with a cache, [B, S]; undefined = no pads
  if (auto* fixed = dynamic_cast<StaticKVCache*>(ctx.state)) {  // a step captured in a CUDA graph
    TORCH_CHECK(T == 1 && options_.window() == 0 && !ctx.valid.defined(),
                "LlamaAttention: a static KV cache takes one unpadded token per step without a window");
    auto [k_all, v_all] = fixed->write(k, v);
    // The g query heads of a kv head as g query rows of it ([B, H, 1, D] -> [B, Hkv, g, D]).
    const int64_t Hkv = options_.num_kv_heads(), g = options_.num_heads() / Hkv, Dh = options_.head_dim();
    const at::Tensor qg = q.reshape({B, Hkv, g, Dh});
    // CUDA: the split-KV kernel reading the length on the device. Elsewhere masked SDPA, without a
    // GQA flag: its memory-efficient kernel takes the mask, but not with GQA (the math fallback
    // would copy K and V out to every query head, in fp32); it does not split the keys over the SMs.
    const at::Tensor y = ops::static_cache_attention_supported(qg, k_all)
                             ? ops::static_cache_attention(qg, k_all, v_all, fixed->position())
                             : sdpa_without_cudnn(qg, k_all, v_all, fixed->visible(), false);  // [B, Hkv, g, D]
    return y.reshape({B, T, options_.num_heads() * Dh});  // T = 1: [B, Hkv, g, D] is [B, 1, H*D] in order
  }
  if (ctx.state) {
    auto* cache = dynamic_cast<KVCache*>(ctx.state);
    TORCH_CHECK(cache, "LlamaAttention: decode state of this layer is not a KVCache");
    std::tie(k, v) = cache->append(k, v);  // [B, Hkv, S, D]
    key_valid = cache->append_valid(ctx.valid, B, T);
  }
  at::Tensor y = causal_softmax_attention(q, k, v, options_.window(), key_valid);  // [B, H, T, D]
  return y.transpose(1, 2).reshape({B, T, options_.num_heads() * options_.head_dim()});
}

at::Tensor LlamaAttentionImpl::attention_output(const at::Tensor& hidden, const MixerContext& ctx) {
  auto [q, k, v] = projections(hidden);
  return attention_from_projections(q, k, v, ctx);
}

at::Tensor LlamaAttentionImpl::forward(const at::Tensor& hidden, const MixerContext& ctx) {
  return o_proj(attention_output(hidden, ctx));
}

std::unique_ptr<LayerState> LlamaAttentionImpl::make_state(int64_t /*batch*/) const {
  return std::make_unique<KVCache>(options_.window());  // bounded to the window, if any
}

namespace {

// When T queries are the last T of S positions (a cache of S - T before them): key positions
// j [1, S] and query positions i [T, 1], for masks such as j <= i.
std::pair<at::Tensor, at::Tensor> key_query_positions(int64_t T, int64_t S, const at::Device& device) {
  auto lopts = at::TensorOptions().dtype(at::kLong).device(device);
  return {at::arange(S, lopts).unsqueeze(0), (at::arange(T, lopts) + (S - T)).unsqueeze(1)};
}

}  // namespace

at::Tensor sdpa_without_cudnn(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                              const std::optional<at::Tensor>& mask, bool gqa) {
  // cuDNN (torch's first choice on the H100) builds a plan for every new key length, a fixed
  // cost of milliseconds per call that made softmax decoding 13-20 tok/s; the flash kernel
  // (no mask) splits the keys over the SMs, the memory-efficient one takes a mask (without GQA).
  auto& context = at::globalContext();
  const bool cudnn = context.userEnabledCuDNNSDP();
  context.setSDPUseCuDNN(false);
  at::Tensor y;
  try {
    y = at::scaled_dot_product_attention(q, k, v, mask, 0.0, /*is_causal=*/false, std::nullopt, gqa);
  } catch (...) {
    context.setSDPUseCuDNN(cudnn);
    throw;
  }
  context.setSDPUseCuDNN(cudnn);
  return y;
}

at::Tensor causal_softmax_attention(const at::Tensor& q, const at::Tensor& k_all, const at::Tensor& v_all,
                                    int64_t window, const at::Tensor& key_valid) {
  TORCH_CHECK(q.dim() == 4 && k_all.dim() == 4 && v_all.dim() == 4, "causal_softmax_attention: q ", q.sizes(),
              ", k ", k_all.sizes(), ", v ", v_all.sizes(), " must be [B, H, T, D]");
  const int64_t T = q.size(2), H = q.size(1), Hkv = k_all.size(1);
  TORCH_CHECK(k_all.size(2) >= T && v_all.size(2) == k_all.size(2) && Hkv > 0 && H % Hkv == 0 &&
                  v_all.size(1) == Hkv,
              "causal_softmax_attention: q ", q.sizes(), ", k ", k_all.sizes(), ", v ", v_all.sizes());
  TORCH_CHECK(window >= 0, "causal_softmax_attention: window must be >= 0, got ", window);
  const bool gqa = H != Hkv;
  TORCH_CHECK(!key_valid.defined() || (key_valid.dim() == 2 && key_valid.size(0) == q.size(0) &&
                                       key_valid.size(1) == k_all.size(2)),
              "causal_softmax_attention: key_valid must be [B, S] = [", q.size(0), ", ", k_all.size(2), "], got ",
              key_valid.defined() ? key_valid.sizes() : at::IntArrayRef{});
  at::Tensor k = k_all, v = v_all, kv_valid = key_valid.defined() ? key_valid.to(q.device(), at::kBool) : key_valid;
  if (kv_valid.defined() && !(T == 1 && !q.is_cuda())) {
    // Left-padded batch: one explicit mask [B, 1, T, S] (causal, window, pad keys; a query's
    // own key always, so that pad queries have a row to attend to).
    const auto [j, i] = key_query_positions(T, k.size(2), q.device());
    at::Tensor allowed = j <= i;  // [T, S]
    if (window > 0) allowed = allowed.logical_and(j > i - window);
    const at::Tensor mask =
        allowed.unsqueeze(0).logical_and(kv_valid.unsqueeze(1)).logical_or((j == i).unsqueeze(0)).unsqueeze(1);
    return at::scaled_dot_product_attention(q, k, v, mask, 0.0, /*is_causal=*/false, std::nullopt, gqa);
  }
  if (window > 0 && k.size(2) > window) {
    if (T == 1) {  // one query: the last `window` keys, then the plain path below
      k = k.narrow(2, k.size(2) - window, window);
      v = v.narrow(2, v.size(2) - window, window);
      if (kv_valid.defined()) kv_valid = kv_valid.narrow(1, kv_valid.size(1) - window, window);
    } else {
      // Query i sits at position past + i and sees keys past + i - window < j <= past + i.
      const auto [j, i] = key_query_positions(T, k.size(2), q.device());
      const at::Tensor mask = (j <= i).logical_and(j > i - window);  // [T, S]
      return at::scaled_dot_product_attention(q, k, v, mask, 0.0, /*is_causal=*/false, std::nullopt, gqa);
    }
  }
  const int64_t S = k.size(2);
  if (S == T) {
    return at::scaled_dot_product_attention(q, k, v, {}, 0.0, /*is_causal=*/true, std::nullopt, gqa);
  }
  if (T == 1) {
    const bool half = q.scalar_type() == at::kBFloat16 || q.scalar_type() == at::kHalf;
    const bool grad = at::GradMode::is_enabled() && (q.requires_grad() || k.requires_grad());
    if (q.is_cuda() && half && !grad) return sdpa_without_cudnn(q, k, v, std::nullopt, gqa);
    // Elsewhere (CPU, fp32, autograd): q [B, H, 1, D] -> [B*Hkv, g, D], the g query heads
    // of a kv head as rows; k, v [B, Hkv, S, D] -> [B*Hkv, S, D] (views of the cache);
    // scores and softmax in fp32, probabilities in the values' dtype.
    const int64_t B = q.size(0), D = q.size(3), g = H / Hkv;
    const at::Tensor qg = q.reshape({B * Hkv, g, D});
    const at::Tensor kb = k.reshape({B * Hkv, S, D}), vb = v.reshape({B * Hkv, S, D});
    at::Tensor scores =  // [B*Hkv, g, S] fp32
        half ? at::bmm(qg.to(at::kFloat), kb.transpose(1, 2).to(at::kFloat)) : at::bmm(qg, kb.transpose(1, 2));
    scores.mul_(1.0 / std::sqrt(static_cast<double>(D)));
    if (kv_valid.defined()) {  // pad keys of a left-padded batch (the query itself is real)
      const at::Tensor pad = kv_valid.logical_not().view({B, 1, 1, S}).expand({B, Hkv, 1, S}).reshape({B * Hkv, 1, S});
      scores.masked_fill_(pad, -INFINITY);
    }
    const at::Tensor p = at::softmax(scores, -1).to(v.scalar_type());
    return at::bmm(p, vb).view({B, H, 1, D});
  }
  // Query i sits at position past + i and sees keys j <= past + i.
  const auto [j, i] = key_query_positions(T, S, q.device());
  const at::Tensor mask = j <= i;  // [T, S]
  return at::scaled_dot_product_attention(q, k, v, mask, 0.0, /*is_causal=*/false, std::nullopt, gqa);
}

at::Tensor apply_rope_fast(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  if (at::GradMode::is_enabled() && x.requires_grad()) return apply_rope(x, cos, sin);
  const int64_t D = x.size(-1), h = D / 2;
  TORCH_CHECK(cos.size(-1) == D && sin.size(-1) == D && cos.size(-2) == x.size(-2) &&
                  (cos.dim() == 2 || (cos.dim() >= 3 && x.dim() == 4 && cos.size(0) == x.size(0))),
              "apply_rope_fast: x ", x.sizes(), " vs cos ", cos.sizes(), " sin ", sin.sizes());
  if (cos.dim() == 3) return apply_rope_fast(x, cos.unsqueeze(1), sin.unsqueeze(1));  // per-row positions
  // rope(x) = [x1 cos1 - x2 sin1 | x2 cos2 + x1 sin2]  (cos/sin halves are equal tables)
  at::Tensor out = at::mul(x, cos);  // laid out like x
  out.narrow(-1, 0, h).addcmul_(x.narrow(-1, h, h), sin.narrow(-1, 0, h), -1);
  out.narrow(-1, h, h).addcmul_(x.narrow(-1, 0, h), sin.narrow(-1, h, h), 1);
  return out;
}

}  // namespace lawcat::model
