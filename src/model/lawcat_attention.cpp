#include "model/lawcat_attention.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/nn/init.h>

#include <cmath>
#include <cstdlib>
#include <string>

#include "model/rope.h"
#include "ops/conv1d.h"
#include "ops/cuda_ops.h"
#include "ops/gla.h"
#include "ops/lawcat_core.h"
#include "util/error.h"
#include "util/log.h"

namespace lawcat::model {

void LawcatOptions::validate() const {
  LAWCAT_CHECK(hidden_size > 0 && num_heads > 0 && num_kv_heads > 0 && head_dim > 0, ConfigError,
               "attention: invalid teacher shape (hidden " << hidden_size << ", heads " << num_heads
                                                           << ", kv heads " << num_kv_heads << ", head_dim "
                                                           << head_dim << ")");
  LAWCAT_CHECK(num_heads % num_kv_heads == 0, ConfigError,
               "attention: num_heads " << num_heads << " is not a multiple of num_kv_heads " << num_kv_heads);
  LAWCAT_CHECK(conv_width >= 0 && conv_width <= kMaxConvWidth, ConfigError,
               "attention.conv_width: " << conv_width << " is outside the supported range 0.." << kMaxConvWidth);
  LAWCAT_CHECK(!gate || gate_rank > 0, ConfigError,
               "attention.gate_rank: must be > 0 when the gate is on (got " << gate_rank << ")");
  LAWCAT_CHECK(gate_tau > 0, ConfigError, "attention.gate_tau: must be > 0 (got " << gate_tau << ")");
  LAWCAT_CHECK(feature_dim >= 0, ConfigError, "attention.feature_dim: must be >= 0 (got " << feature_dim << ")");
  LAWCAT_CHECK(feature_dim > 0 || head_dim % 2 == 0, ConfigError,
               "attention.feature_dim: the default (head_dim / 2) needs an even head_dim; got head_dim "
                   << head_dim << " — set feature_dim explicitly");
  LAWCAT_CHECK(f() <= head_dim, ConfigError,
               "attention.feature_dim: " << f() << " must not exceed head_dim " << head_dim
                                         << " (the map is initialised to eye(head_dim, feature_dim))");
  LAWCAT_CHECK(window >= 0, ConfigError, "attention.window: must be >= 0 (got " << window << ")");
  LAWCAT_CHECK(window_weight_init > 0 && window_weight_init < 1, ConfigError,
               "attention.window_weight_init: must be in (0, 1) (got " << window_weight_init << ")");
  LAWCAT_CHECK(chunk_size > 0, ConfigError, "attention.chunk_size: must be > 0 (got " << chunk_size << ")");
}

LawcatOptions lawcat_options_from_config(const config::AttentionConfig& a, int64_t hidden_size,
                                         int64_t num_heads, int64_t num_kv_heads, int64_t head_dim) {
  LawcatOptions o;
  o.hidden_size = hidden_size;
  o.num_heads = num_heads;
  o.num_kv_heads = num_kv_heads;
  o.head_dim = head_dim;
  o.conv_width = a.conv_width;
  o.conv_on_v = a.conv_on_v;
  o.gate = a.gate;
  o.gate_rank = a.gate_rank;
  o.gate_tau = a.gate_tau;
  o.feature_dim = a.feature_dim;
  o.normalize = a.normalize;
  o.rope = a.rope;
  o.window = a.window;
  o.window_weight_init = a.window_weight_init;
  o.eps = a.eps;
  o.chunk_size = a.chunk_size;
  o.validate();
  return o;
}

int64_t LawcatState::memory_bytes() const {
  int64_t n = 0;
  for (const at::Tensor* t : {&S, &z, &conv_q_cache, &conv_k_cache, &conv_v_cache})
    if (t->defined()) n += t->numel() * t->element_size();
  return n + window.memory_bytes();
}

namespace {
// Conv init: the tap on the current token 1.0, all others 0.001 (near identity).
at::Tensor conv_init(int64_t channels, int64_t width) {
  at::Tensor w = at::full({channels, width}, 0.001, at::kFloat);
  w.select(1, width - 1).fill_(1.0);
  return w;
}
}  // namespace

LawcatAttentionImpl::LawcatAttentionImpl(const LawcatOptions& options,
                                         const std::shared_ptr<LlamaAttentionImpl>& teacher)
    : options_(options), teacher_(teacher) {
  options_.validate();
  TORCH_CHECK(teacher_, "LawcatAttention: a teacher attention module is required");
  const auto& o = options_;
  const auto& to = teacher_->options();
  LAWCAT_CHECK(to.num_heads() == o.num_heads && to.num_kv_heads() == o.num_kv_heads &&
                   to.head_dim() == o.head_dim && to.hidden_size() == o.hidden_size,
               ConfigError, "LawcatAttention: options do not match the teacher's shape");
  q_proj = register_module("q_proj", teacher_->q_proj);
  k_proj = register_module("k_proj", teacher_->k_proj);
  v_proj = register_module("v_proj", teacher_->v_proj);
  o_proj = register_module("o_proj", teacher_->o_proj);
  // New parameters live on the teacher's device, in fp32 (trainable weights stay fp32).
  at::Device device = teacher_->q_proj->weight.device();
  auto f32 = at::TensorOptions().dtype(at::kFloat).device(device);
  const int64_t H = o.num_heads, Hkv = o.num_kv_heads, d = o.head_dim, f = o.f(), F = o.phi_dim();
  if (o.conv_width > 0) {
    conv_q = register_parameter("conv_q", conv_init(H * d, o.conv_width).to(device));
    conv_k = register_parameter("conv_k", conv_init(H * d, o.conv_width).to(device));
    if (o.conv_on_v) conv_v = register_parameter("conv_v", conv_init(Hkv * d, o.conv_width).to(device));
  }
  // Wφ = eye(d, f) per head.
  feature_map = register_parameter("feature_map", at::eye(d, f, f32).unsqueeze(0).repeat({H, 1, 1}).contiguous());
  if (o.gate) {
    gate_down = register_module("gate_down", torch::nn::Linear(torch::nn::LinearOptions(o.hidden_size, o.gate_rank).bias(false)));
    gate_up = register_module("gate_up", torch::nn::Linear(torch::nn::LinearOptions(o.gate_rank, Hkv * F).bias(true)));
    at::NoGradGuard no_grad;
    gate_down->weight.normal_(0.0, 0.006);
    gate_up->weight.normal_(0.0, 0.006);
    gate_up->bias.zero_();
    gate_down->to(device, at::kFloat);
    gate_up->to(device, at::kFloat);
  }
  if (o.window > 0) {
    double w = std::log(o.window_weight_init / (1.0 - o.window_weight_init));
    window_weight = register_parameter("window_weight", at::full({H}, w, f32));
  }
}

std::vector<std::pair<std::string, at::Tensor>> LawcatAttentionImpl::lawcat_parameters() const {
  std::vector<std::pair<std::string, at::Tensor>> out;
  if (conv_q.defined()) out.emplace_back("conv_q", conv_q);
  if (conv_k.defined()) out.emplace_back("conv_k", conv_k);
  if (conv_v.defined()) out.emplace_back("conv_v", conv_v);
  out.emplace_back("feature_map", feature_map);
  if (gate_down) {
    out.emplace_back("gate_down.weight", gate_down->weight);
    out.emplace_back("gate_up.weight", gate_up->weight);
    out.emplace_back("gate_up.bias", gate_up->bias);
  }
  if (window_weight.defined()) out.emplace_back("window_weight", window_weight);
  return out;
}

void LawcatAttentionImpl::clear_recorded() {
  last_student_ = at::Tensor();
  last_teacher_ = at::Tensor();
}

std::unique_ptr<LayerState> LawcatAttentionImpl::make_state(int64_t batch) const {
  if (mode_ == MixerMode::kTeacher) return teacher_->make_state(batch);
  return std::make_unique<LawcatState>();
}

at::Tensor LawcatAttentionImpl::phi(const at::Tensor& u) const {
  // u [B, T, H, d] -> [softmax(u Wφ_h) ; softmax(-u Wφ_h)] [B, T, H, 2f]
  return ops::hedgehog_feature_map(u, feature_map);
}

at::Tensor LawcatAttentionImpl::log_gate(const at::Tensor& x) const {
  // W1 then W2 (+ b), in fp32: F.linear without going through the (non-const) modules.
  return ops::low_rank_log_gate(at::linear(x.to(at::kFloat), gate_down->weight), gate_up->weight, gate_up->bias,
                                options_.gate_tau, options_.num_kv_heads);
}

at::Tensor LawcatAttentionImpl::conv(const at::Tensor& x, const at::Tensor& w, at::Tensor* cache) const {
  // x [B, T, C]; cache [B, C, c-1] continues a stream when given.
  if (!cache) return ops::causal_conv1d(x, w);
  const int64_t width = w.size(1);
  std::optional<at::Tensor> init;
  if (cache->defined()) init = *cache;
  at::Tensor out = ops::causal_conv1d(x, w, init);
  *cache = ops::causal_conv1d_cache(x.detach(), width, init ? std::optional<at::Tensor>(init->detach())
                                                            : std::optional<at::Tensor>());
  return out;
}

at::Tensor LawcatAttentionImpl::forward(const at::Tensor& hidden, const MixerContext& ctx) {
  switch (mode_) {
    case MixerMode::kTeacher:
      return teacher_->forward(hidden, ctx);
    case MixerMode::kDistill: {
      TORCH_CHECK(ctx.state == nullptr, "LawcatAttention: distillation mode runs without a decode state");
      // The teacher and the student read the same q/k/v projections of the same hidden
      // states: computed once, without a graph when the projections are frozen (stage 1),
      // so gradients reach only the LAWCAT parameters.
      const bool proj_trainable = q_proj->weight.requires_grad() || k_proj->weight.requires_grad() ||
                                  v_proj->weight.requires_grad();
      at::Tensor q, k, v, y_teacher;
      {
        at::NoGradGuard no_grad;
        std::tie(q, k, v) = teacher_->projections(hidden);
        y_teacher = teacher_->attention_from_projections(q, k, v, ctx);
      }
      last_teacher_ = y_teacher;
      const at::Tensor x = hidden.detach();
      if (proj_trainable) std::tie(q, k, v) = teacher_->projections(x);
      last_student_ = lawcat_core(x, q, k, v, ctx, nullptr);
      return o_proj->forward(y_teacher);
    }
    case MixerMode::kStudent:
    default:
      return o_proj->forward(lawcat_output(hidden, ctx));
  }
}

namespace {

#ifdef LAWCAT_HAVE_CUDA
// Causal conv of k [B, T, Hkv*d] with per-query-head filters w [H*d, W], the kv head
// indexed by the kernel rather than k repeated to H heads first (training, no cache).
struct RepeatConvFunction : public torch::autograd::Function<RepeatConvFunction> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, const at::Tensor& w,
                            int64_t repeat, int64_t head_dim) {
    ctx->save_for_backward({x, w});
    ctx->saved_data["repeat"] = repeat;
    ctx->saved_data["head_dim"] = head_dim;
    return ops::cuda::causal_conv1d_fwd(x, w, at::Tensor(), repeat, head_dim);
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto s = ctx->get_saved_variables();
    auto [dx, dw, dcache] = ops::cuda::causal_conv1d_bwd(s[0], s[1], at::Tensor(), grads[0].contiguous(),
                                                         ctx->saved_data["repeat"].toInt(),
                                                         ctx->saved_data["head_dim"].toInt());
    (void)dcache;
    return {dx, dw.to(s[1].scalar_type()), at::Tensor(), at::Tensor()};
  }
};
#endif

// LAWCAT_NO_FUSED_PREFILL=1 turns the fused prefill off (A/B timing, debugging).
bool fused_prefill_disabled() {
  static const bool off = [] {
    const char* e = std::getenv("LAWCAT_NO_FUSED_PREFILL");
    return e && *e && std::string(e) != "0";
  }();
  return off;
}

// The conv cache after a sequence, from its last W-1 inputs only: x [B, T, C] -> [B, C, W-1].
at::Tensor tail_cache(const at::Tensor& x, int64_t width) {
  const int64_t T = x.size(1), m = std::min<int64_t>(T, width - 1);
  return ops::causal_conv1d_cache(x.narrow(1, T - m, m), width);
}

}  // namespace

bool LawcatAttentionImpl::fused_core_settings() const {
  const auto& o = options_;
  return o.conv_width >= 1 && o.conv_width <= 8 && o.gate && o.phi_dim() == o.head_dim && !o.rope && o.window == 0 &&
         !o.conv_on_v;
}

at::Tensor LawcatAttentionImpl::gate_activations(const at::Tensor& x) const {
  return at::linear(x, gate_down->weight.to(x.scalar_type()));
}

at::Tensor LawcatAttentionImpl::fused_prefill(const at::Tensor& x, const at::Tensor& q, const at::Tensor& k,
                                              const at::Tensor& v, LawcatState* st) {
#ifdef LAWCAT_HAVE_CUDA
  const auto& o = options_;
  const int64_t B = x.size(0), T = x.size(1), H = o.num_heads, Hkv = o.num_kv_heads, d = o.head_dim;
  const bool fits = x.is_cuda() && !at::GradMode::is_enabled() && !fused_prefill_disabled() && fused_core_settings() &&
                    o.gate_rank % 16 == 0 && (d == 64 || d == 128) && (st == nullptr || st->seen == 0) && T > 1 &&
                    (q.scalar_type() == at::kBFloat16 || q.scalar_type() == at::kHalf);
  if (!fits) return at::Tensor();
  const at::Tensor a = gate_activations(x);
  const at::Tensor q4 = q.view({B, T, H, d}), k4 = k.view({B, T, Hkv, d}), v4 = v.view({B, T, Hkv, d});
  ops::GlaResult r;
  if (ops::cuda::lawcat_core_fwd_supported(q4, o.conv_width, o.gate_rank)) {
    // One fused kernel per pass: conv + φ + gate + normalized GLA, no intermediates in memory.
    std::tie(r.y, r.state, r.normalizer) = ops::cuda::lawcat_core_fwd(
        q4, k4, v4, a, conv_q, conv_k, feature_map, gate_up->weight, gate_up->bias, o.gate_tau, o.eps, o.normalize);
  } else {
    auto [phiq, phik, g] =
        ops::cuda::lawcat_prologue_fwd(q4, k4, a, conv_q, conv_k, feature_map, gate_up->weight, gate_up->bias, o.gate_tau);
    ops::GlaOptions gopt;
    gopt.chunk_size = o.chunk_size;
    gopt.normalize = o.normalize;
    gopt.eps = o.eps;
    r = ops::chunk_gla(phiq, phik, v4, g, std::nullopt, std::nullopt, gopt);
  }
  if (st) {
    st->S = r.state;
    st->z = r.normalizer;
    st->conv_q_cache = tail_cache(q, o.conv_width);
    const int64_t m = std::min<int64_t>(T, o.conv_width - 1);
    const at::Tensor k_tail = k.narrow(1, T - m, m).view({B, m, Hkv, 1, d}).expand({B, m, Hkv, o.group(), d});
    st->conv_k_cache = tail_cache(k_tail.reshape({B, m, H * d}), o.conv_width);
    st->seen += T;
  }
  return r.y;  // [B, T, H, d]
#else
  (void)x, (void)q, (void)k, (void)v, (void)st;
  return at::Tensor();
#endif
}

at::Tensor LawcatAttentionImpl::lawcat_output(const at::Tensor& x, const MixerContext& ctx) {
  LawcatState* st = nullptr;
  if (ctx.state) {
    st = dynamic_cast<LawcatState*>(ctx.state);
    TORCH_CHECK(st, "LawcatAttention: the decode state is not a LawcatState");
  }
  return lawcat_core(x, q_proj->forward(x), k_proj->forward(x), v_proj->forward(x), ctx, st);
}

at::Tensor LawcatAttentionImpl::lawcat_core(const at::Tensor& x, const at::Tensor& q, const at::Tensor& k,
                                            const at::Tensor& v, const MixerContext& ctx, LawcatState* st) {
  // q [B, T, H*d], k, v [B, T, Hkv*d]
  const auto& o = options_;
  const int64_t B = x.size(0), T = x.size(1), H = o.num_heads, Hkv = o.num_kv_heads, d = o.head_dim;
  static bool fused_ok = true;  // a kernel error turns the fused prefill off for the process (logged)
  if (fused_ok) {
    try {
      if (at::Tensor y = fused_prefill(x, q, k, v, st); y.defined()) return y.reshape({B, T, H * d}).to(x.scalar_type());
    } catch (const c10::Error& e) {
      fused_ok = false;
      log::warn("LAWCAT fused prefill failed, using the ATen path from now on: ", e.what_without_backtrace());
      if (st) *st = LawcatState();
    }
  }

  // Training on CUDA: the whole core as one fused op (forward and backward kernels).
  if (!st && at::GradMode::is_enabled() && x.is_cuda() && fused_core_settings() &&
      (x.scalar_type() == at::kBFloat16 || x.scalar_type() == at::kHalf)) {
    const at::Tensor q4 = q.view({B, T, H, d});
    if (ops::lawcat_core_fused_supported(q4, o.conv_width, o.gate_rank)) {
      ops::LawcatCoreOptions co;
      co.tau = o.gate_tau;
      co.eps = o.eps;
      co.normalize = o.normalize;
      return ops::lawcat_core(q4, k.view({B, T, Hkv, d}), v.view({B, T, Hkv, d}), gate_activations(x), conv_q,
                              conv_k, feature_map, gate_up->weight, gate_up->bias, co)
          .reshape({B, T, H * d})
          .to(x.scalar_type());
    }
  }

  const bool step = st && T == 1 && !at::GradMode::is_enabled();  // one decoding step
  at::Tensor q_conv = q, k_conv, v_lin = v;
  // GQA: every query head has its own k filter, so k is repeated to H heads before the
  // conv (on CUDA in training the conv kernel indexes the kv head instead).
  auto k_rep = [&] { return k.view({B, T, Hkv, 1, d}).expand({B, T, Hkv, o.group(), d}).reshape({B, T, H * d}); };
  if (o.conv_width > 0) {
    if (step) {
      // Roll the caches in place: one kernel per conv instead of a conv plus a new cache.
      auto step_conv = [&](const at::Tensor& u, const at::Tensor& w, at::Tensor& cache) {
        if (!cache.defined()) cache = at::zeros({B, u.size(2), o.conv_width - 1}, u.options());
        return ops::causal_conv1d_step(u.select(1, 0), w, cache).unsqueeze(1);
      };
      q_conv = step_conv(q, conv_q, st->conv_q_cache);
      k_conv = step_conv(k_rep(), conv_k, st->conv_k_cache);
      if (o.conv_on_v) v_lin = step_conv(v, conv_v, st->conv_v_cache);
    } else {
#ifdef LAWCAT_HAVE_CUDA
      const bool indexed = !st && x.is_cuda() && o.group() > 1;
#else
      const bool indexed = false;
#endif
      q_conv = conv(q, conv_q, st ? &st->conv_q_cache : nullptr);
#ifdef LAWCAT_HAVE_CUDA
      if (indexed) k_conv = RepeatConvFunction::apply(k.contiguous(), conv_k, o.group(), d);
#endif
      if (!indexed) k_conv = conv(k_rep(), conv_k, st ? &st->conv_k_cache : nullptr);
      if (o.conv_on_v) v_lin = conv(v, conv_v, st ? &st->conv_v_cache : nullptr);
    }
  } else {
    k_conv = k_rep();
  }
  at::Tensor q4 = q_conv.view({B, T, H, d});
  at::Tensor k4 = k_conv.view({B, T, H, d});
  at::Tensor v4 = v_lin.view({B, T, Hkv, d});
  if (o.rope) {
    TORCH_CHECK(ctx.cos.defined(), "LawcatAttention: rope on the linear path needs RoPE tables in the context");
    q4 = apply_rope(q4.transpose(1, 2), ctx.cos, ctx.sin).transpose(1, 2);
    k4 = apply_rope(k4.transpose(1, 2), ctx.cos, ctx.sin).transpose(1, 2);
  }
  // φ in fp32, handed to the GLA op in the values' dtype (bf16 on GPU: tensor cores).
  at::Tensor phiq = phi(q4).to(v4.scalar_type());
  at::Tensor phik = phi(k4).to(v4.scalar_type());
  at::Tensor g = o.gate ? log_gate(x)
                        : at::zeros({B, T, Hkv, o.phi_dim()}, x.options().dtype(at::kFloat));
  ops::GlaOptions gopt;
  gopt.chunk_size = o.chunk_size;
  gopt.normalize = o.normalize;
  gopt.eps = o.eps;

  at::Tensor y;  // [B, T, H, d]
  if (o.window > 0) {
    // The window part attends with the teacher's RoPE'd projections (as LoLCATs).
    at::Tensor q_r = q.view({B, T, H, d}).transpose(1, 2);
    at::Tensor k_r = k.view({B, T, Hkv, d}).transpose(1, 2);
    if (ctx.cos.defined()) {
      q_r = apply_rope(q_r, ctx.cos, ctx.sin);
      k_r = apply_rope(k_r, ctx.cos, ctx.sin);
    }
    WindowHybridOptions wopt;
    wopt.window = o.window;
    wopt.gate = o.gate;
    wopt.eps = o.eps;
    wopt.chunk_size = o.chunk_size;
    y = window_hybrid(q_r, k_r, v4, phiq, phik, g, window_weight, wopt, st ? &st->window : nullptr);
  } else if (st) {
    if (!st->S.defined()) {
      st->S = at::zeros({B, H, o.phi_dim(), d}, x.options().dtype(at::kFloat));
      st->z = at::zeros({B, H, o.phi_dim()}, x.options().dtype(at::kFloat));
    }
    if (T == 1 && !at::GradMode::is_enabled()) {
      y = ops::gla_step(phiq.select(1, 0), phik.select(1, 0), v4.select(1, 0), g.select(1, 0), st->S, st->z, gopt)
              .unsqueeze(1);
    } else {
      ops::GlaResult r = ops::chunk_gla(phiq, phik, v4, g, st->S, st->z, gopt);
      y = r.y;
      st->S = r.state.detach();
      st->z = r.normalizer.detach();
    }
  } else {
    y = ops::chunk_gla(phiq, phik, v4, g, std::nullopt, std::nullopt, gopt).y;
  }
  if (st) st->seen += T;
  return y.reshape({B, T, H * d}).to(x.scalar_type());
}

}  // namespace lawcat::model
