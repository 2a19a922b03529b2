#include "model/lawcat_attention.h"

#include <ATen/ATen.h>
#include <torch/nn/init.h>

#include <cmath>
#include <string>

#include "model/rope.h"
#include "ops/lawcat_core.h"
#include "util/error.h"

namespace lawcat::model {

namespace {
// Runs the range checks attached to the attention section's fields (config/schema.h's visit).
struct AttentionRangeCheck {
  template <class K, class T> void operator()(const K&, T&) {}
  template <class K, class T, class C> void operator()(const K& key, T& value, C&& check) {
    const std::string e = check(value);
    LAWCAT_CHECK(e.empty(), ConfigError, "attention." << key << ": " << e << " (got " << value << ")");
  }
};
}  // namespace

void LawcatOptions::validate() const {
  LAWCAT_CHECK(hidden_size > 0 && num_heads > 0 && num_kv_heads > 0 && head_dim > 0, ConfigError,
               "attention: invalid teacher shape (hidden " << hidden_size << ", heads " << num_heads
                                                           << ", kv heads " << num_kv_heads << ", head_dim "
                                                           << head_dim << ")");
  LAWCAT_CHECK(num_heads % num_kv_heads == 0, ConfigError,
               "attention: num_heads " << num_heads << " is not a multiple of num_kv_heads " << num_kv_heads);
  config::AttentionConfig knobs = *this;
  AttentionRangeCheck range_check;
  knobs.visit(range_check);
  LAWCAT_CHECK(conv_width <= kMaxConvWidth, ConfigError,
               "attention.conv_width: " << conv_width << " is outside the supported range 0.." << kMaxConvWidth);
  LAWCAT_CHECK(feature_dim > 0 || head_dim % 2 == 0, ConfigError,
               "attention.feature_dim: the default (head_dim / 2) needs an even head_dim; got head_dim "
                   << head_dim << " — set feature_dim explicitly");
  const std::string gate_init = config::gate_init_problem(*this);
  LAWCAT_CHECK(gate_init.empty(), ConfigError, gate_init);
  LAWCAT_CHECK(f() <= head_dim, ConfigError,
               "attention.feature_dim: " << f() << " must not exceed head_dim " << head_dim
                                         << " (the map is initialised to eye(head_dim, feature_dim))");
}

LawcatOptions lawcat_options_from_config(const config::AttentionConfig& a, int64_t hidden_size,
                                         int64_t num_heads, int64_t num_kv_heads, int64_t head_dim) {
  LawcatOptions o;
  static_cast<config::AttentionConfig&>(o) = a;
  o.hidden_size = hidden_size;
  o.num_heads = num_heads;
  o.num_kv_heads = num_kv_heads;
  o.head_dim = head_dim;
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

// Gate biases whose memory at zero input, −1 / log α = τ / softplus(−b), runs log-uniformly
// from min to max tokens over the f features of each half of φ (same spread in both halves, so
// the positive and the negative softmax of a feature keep the same timescale).
at::Tensor spread_gate_bias(int64_t Hkv, int64_t f, double tau, double min_memory, double max_memory) {
  at::Tensor b = at::empty({Hkv, 2, f}, at::kDouble);
  auto acc = b.accessor<double, 3>();
  for (int64_t j = 0; j < f; ++j) {
    const double memory = f > 1 ? min_memory * std::pow(max_memory / min_memory, double(j) / double(f - 1)) : max_memory;
    const double bias = -std::log(std::expm1(tau / memory));  // softplus(−b) = τ / memory
    for (int64_t h = 0; h < Hkv; ++h) acc[h][0][j] = acc[h][1][j] = bias;
  }
  return b.reshape({Hkv * 2 * f}).to(at::kFloat);
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
  if (teacher_->q_norm) {  // Qwen3: the per-head q/k norms are part of producing q and k
    q_norm = register_module("q_norm", teacher_->q_norm);
    k_norm = register_module("k_norm", teacher_->k_norm);
  }
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
    if (o.gate_init_memory_max > 0)  // an ablation; the paper starts every bias at 0
      gate_up->bias.copy_(spread_gate_bias(Hkv, f, o.gate_tau, o.gate_init_memory_min, o.gate_init_memory_max));
    else
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

at::Tensor LawcatAttentionImpl::lawcat_output(const at::Tensor& x, const MixerContext& ctx) {
  LawcatState* st = nullptr;
  if (ctx.state) {
    st = dynamic_cast<LawcatState*>(ctx.state);
    TORCH_CHECK(st, "LawcatAttention: the decode state is not a LawcatState");
  }
  auto [q, k, v] = teacher_->projections(x);  // biases and Qwen3's q/k norms included
  return lawcat_core(x, q, k, v, ctx, st);
}

ops::LawcatCoreWeights LawcatAttentionImpl::core_weights() const {
  ops::LawcatCoreWeights w;
  w.conv_q = conv_q;
  w.conv_k = conv_k;
  w.conv_v = conv_v;
  w.wphi = feature_map;
  if (gate_down) {
    w.w1 = gate_down->weight;
    w.w2 = gate_up->weight;
    w.b2 = gate_up->bias;
  }
  return w;
}

ops::LawcatCoreOptions LawcatAttentionImpl::core_options() const {
  ops::LawcatCoreOptions co;
  co.tau = options_.gate_tau;
  co.eps = options_.eps;
  co.normalize = options_.normalize;
  co.chunk_size = options_.chunk_size;
  return co;
}

at::Tensor LawcatAttentionImpl::lawcat_core(const at::Tensor& x, const at::Tensor& q, const at::Tensor& k,
                                            const at::Tensor& v, const MixerContext& ctx, LawcatState* st) {
  // q [B, T, H*d], k, v [B, T, Hkv*d]
  const auto& o = options_;
  const int64_t B = x.size(0), T = x.size(1), H = o.num_heads, Hkv = o.num_kv_heads, d = o.head_dim;
  ops::LawcatCoreInputs in{x, q, k, v, at::Tensor(), at::Tensor()};
  in.valid = ctx.valid;  // left padding: pads leave the state untouched (ops::LawcatCoreInputs)
  if (o.rope) {
    TORCH_CHECK(ctx.cos.defined(), "LawcatAttention: rope on the linear path needs RoPE tables in the context");
    in.cos = ctx.cos;
    in.sin = ctx.sin;
  }
  at::Tensor y;  // [B, T, H, d]
  if (o.window > 0) {
    // The window hybrid: the core's features, then softmax over the window + linear beyond,
    // the window part attending with the teacher's RoPE'd projections (as LoLCATs).
    const ops::LawcatFeatures f = ops::lawcat_features(in, core_weights(), core_options(), st);
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
    y = window_hybrid(q_r, k_r, f.v, f.phiq, f.phik, f.g, window_weight, wopt, st ? &st->window : nullptr,
                      ctx.valid);
    if (st) st->seen += T;
  } else if (st && T == 1 && !at::GradMode::is_enabled() && !ctx.valid.defined()) {
    y = ops::lawcat_core_step(in, core_weights(), core_options(), *st);  // one decoding step
  } else {
    y = ops::lawcat_core(in, core_weights(), core_options(), st);  // training, prefill, no-grad
  }
  return y.reshape({B, T, H * d}).to(x.scalar_type());
}

}  // namespace lawcat::model
