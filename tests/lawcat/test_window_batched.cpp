// The window hybrid's batched evaluation (model/window_hybrid: blocked softmax band + lagged
// chunk_gla) through the layer, in fp32, against float64 oracles independent of it:
//   * forward: a token-by-token implementation from the formula (softmax over s ∈ (t-W, t],
//     gated linear sum over s ≤ t-W, one shared normalizer);
//   * gradients of the LAWCAT parameters and window_weight: float64 autograd through the
//     former per-offset loop formulation (window_hybrid_loop_ref below: the full linear sums
//     from the token-by-token recurrence minus the band, one offset j = t - s at a time);
//   * steep gates (no overflow) and decoding: prefill, a multi-token continuation, then
//     one-token steps == one parallel pass.
// Grid: gate on/off, conv 0/4, T ∈ {1, 63, 64, 65, 200}, W ∈ {64, 5}, B = 2, GQA H = 4, Hkv = 2.
// Bars as in test_window_hybrid.cpp (forward, max error relative to the largest output: 1e-5)
// and test_lawcat_core.cpp (relative RMS: 1e-5).
#include <ATen/ATen.h>

#include <cmath>
#include <map>
#include <memory>
#include <string>

#include "common/catch.h"
#include "config/schema.h"
#include "model/attention.h"
#include "model/lawcat_attention.h"
#include "model/window_hybrid.h"
#include "ops/ops_testing.h"
#include "ops/reference.h"

using namespace lawcat;

namespace {

constexpr int64_t kHidden = 32, kH = 4, kHkv = 2, kd = 8, kRank = 4, kB = 2;

struct Layer {
  model::LlamaAttention teacher;
  std::shared_ptr<model::LawcatAttentionImpl> m;
};

// A layer with random weights away from init (as in test_window_hybrid.cpp); `gate_bias`
// shifts the gate logits (very negative: gates near 0, steep cumulative decay).
Layer make_layer(bool gate, int64_t conv, int64_t W, double gate_bias = 0.0) {
  at::manual_seed(11);
  Layer l;
  l.teacher = std::make_shared<model::LlamaAttentionImpl>(model::LlamaAttentionOptions(kHidden, kH, kHkv, kd));
  config::AttentionConfig a;
  a.gate = gate;
  a.gate_rank = kRank;
  a.conv_width = conv;
  a.window = W;
  a.chunk_size = 16;
  l.m = std::make_shared<model::LawcatAttentionImpl>(model::lawcat_options_from_config(a, kHidden, kH, kHkv, kd),
                                                     l.teacher);
  at::NoGradGuard ng;
  for (auto& p : l.teacher->parameters()) p.normal_(0, 0.4).set_requires_grad(false);
  for (auto& [name, p] : l.m->lawcat_parameters()) p.normal_(0, 0.5);
  if (gate) l.m->gate_up->bias.normal_(gate_bias, 2);
  l.m->window_weight.normal_(0, 1);
  return l;
}

at::Tensor f64(const at::Tensor& t) { return t.detach().to(at::kDouble); }

// The layer's inputs to the window hybrid in float64 from x [B, T, hidden], differentiable
// w.r.t. the leaves p (float64 copies of the LAWCAT parameters, by name).
struct Prologue {
  at::Tensor q, k, v;     // [B, T, H, d], [B, T, Hkv, d], [B, T, Hkv, d]: raw projections (no RoPE)
  at::Tensor phiq, phik;  // [B, T, H, F]
  at::Tensor g;           // [B, T, Hkv, F] log α (zeros without a gate)
};

Prologue prologue64(const Layer& l, const at::Tensor& x, std::map<std::string, at::Tensor>& p) {
  const auto& o = l.m->options();
  const int64_t B = x.size(0), T = x.size(1), H = o.num_heads, Hkv = o.num_kv_heads, d = o.head_dim;
  const at::Tensor x0 = f64(x);
  Prologue r;
  const at::Tensor q = at::linear(x0, f64(l.m->q_proj->weight));  // [B, T, H*d]
  const at::Tensor k = at::linear(x0, f64(l.m->k_proj->weight));  // [B, T, Hkv*d]
  r.q = q.view({B, T, H, d});
  r.k = k.view({B, T, Hkv, d});
  r.v = at::linear(x0, f64(l.m->v_proj->weight)).view({B, T, Hkv, d});
  at::Tensor qc = q, kc = r.k.repeat_interleave(o.group(), 2).reshape({B, T, H * d});
  if (o.conv_width > 0) {
    qc = ops::ref::causal_conv1d_ref(qc, p.at("conv_q"));
    kc = ops::ref::causal_conv1d_ref(kc, p.at("conv_k"));
  }
  auto phi = [&](const at::Tensor& u) {
    const at::Tensor proj = at::einsum("bthd,hdf->bthf", {u.view({B, T, H, d}), p.at("feature_map")});
    return at::clamp_min(at::cat({at::softmax(proj, -1), at::softmax(-proj, -1)}, -1), 1e-12);
  };
  r.phiq = phi(qc);
  r.phik = phi(kc);
  const int64_t F = r.phiq.size(3);
  r.g = o.gate ? (at::log_sigmoid(at::linear(at::linear(x0, p.at("gate_down.weight")), p.at("gate_up.weight"),
                                             p.at("gate_up.bias"))) /
                  o.gate_tau)
                     .view({B, T, Hkv, F})
               : at::zeros({B, T, Hkv, F}, x0.options());
  return r;
}

// y [B, T, H, d] one query token at a time, straight from the formula.
at::Tensor token_by_token_ref(const Prologue& p, const at::Tensor& window_weight, int64_t W, double eps) {
  const int64_t T = p.q.size(1), H = p.q.size(2), d = p.q.size(3), grp = H / p.k.size(2);
  const at::Tensor G = p.g.cumsum(1).repeat_interleave(grp, 2);  // [B, T, H, F]
  const at::Tensor k = p.k.repeat_interleave(grp, 2), v = p.v.repeat_interleave(grp, 2);  // [B, T, H, d]
  const at::Tensor sw = at::sigmoid(window_weight).view({1, H});
  std::vector<at::Tensor> ys;
  for (int64_t t = 0; t < T; ++t) {
    const int64_t first = std::max<int64_t>(0, t - W + 1), n = t - first + 1;
    const at::Tensor l = (p.q.select(1, t).unsqueeze(1) * k.narrow(1, first, n)).sum(-1) / std::sqrt(double(d));
    const at::Tensor e = at::exp(l - std::get<0>(l.max(1, true)));  // [B, n, H]
    at::Tensor num = sw.unsqueeze(-1) * (e.unsqueeze(-1) * v.narrow(1, first, n)).sum(1);  // [B, H, d]
    at::Tensor den = sw * e.sum(1);                                                      // [B, H]
    if (first > 0) {
      const at::Tensor A = (p.phiq.select(1, t).unsqueeze(1) * p.phik.narrow(1, 0, first) *
                            at::exp(G.select(1, t).unsqueeze(1) - G.narrow(1, 0, first)))
                               .sum(-1);  // [B, first, H]
      num = num + (1 - sw).unsqueeze(-1) * (A.unsqueeze(-1) * v.narrow(1, 0, first)).sum(1);
      den = den + (1 - sw) * A.sum(1);
    }
    ys.push_back(num / (den + eps).unsqueeze(-1));
  }
  return at::stack(ys, 1);
}

// The former loop formulation (no state), in the inputs' dtype: full linear sums (here from the
// token-by-token recurrence) minus the band, band and softmax one offset j = t - s at a time.
// q_rope [B, H, T, d], k_rope [B, Hkv, T, d], v [B, T, Hkv, d], phiq/phik [B, T, H, F],
// g [B, T, Hkv, F], window_weight [H] -> y [B, T, H, d].
at::Tensor window_hybrid_loop_ref(const at::Tensor& q_rope, const at::Tensor& k_rope, const at::Tensor& v,
                                  const at::Tensor& phiq, const at::Tensor& phik, const at::Tensor& g,
                                  const at::Tensor& window_weight, int64_t W, double eps) {
  const int64_t B = phiq.size(0), T = phiq.size(1), H = phiq.size(2), Hkv = v.size(2), d = v.size(3),
                F = phiq.size(3), grp = H / Hkv;
  const auto opt = phiq.options();
  const at::Tensor num_full = std::get<0>(ops::ref::gla_recurrent_ref(phiq, phik, v, g, {}, {}, false));
  const at::Tensor den_full =
      std::get<0>(ops::ref::gla_recurrent_ref(phiq, phik, at::ones({B, T, Hkv, 1}, opt), g, {}, {}, false));
  const at::Tensor G = g.cumsum(1).unsqueeze(3).expand({B, T, Hkv, grp, F}).reshape({B, T, H, F});
  const at::Tensor vq = v.unsqueeze(3).expand({B, T, Hkv, grp, d}).reshape({B, T, H, d});
  const at::Tensor kf = k_rope.repeat_interleave(grp, 1), vf = v.transpose(1, 2).repeat_interleave(grp, 1);
  const double scale = 1.0 / std::sqrt(static_cast<double>(q_rope.size(3)));
  std::vector<at::Tensor> logits;
  at::Tensor band_num = at::zeros({B, T, H, d}, opt), band_den = at::zeros({B, T, H, 1}, opt);
  for (int64_t j = 0; j < std::min(W, T); ++j) {  // s = t - j for t ≥ j
    const int64_t cnt = T - j;
    const at::Tensor a = (phiq.narrow(1, j, cnt) * phik.narrow(1, 0, cnt) *
                          at::exp(G.narrow(1, j, cnt) - G.narrow(1, 0, cnt)))
                             .sum(-1, true);
    band_num = band_num + at::constant_pad_nd(a * vq.narrow(1, 0, cnt), {0, 0, 0, 0, j, 0});
    band_den = band_den + at::constant_pad_nd(a, {0, 0, 0, 0, j, 0});
    const at::Tensor l = (q_rope.narrow(2, j, cnt) * kf.narrow(2, 0, cnt)).sum(-1) * scale;  // [B, H, cnt]
    logits.push_back(at::constant_pad_nd(l, {j, 0}, -INFINITY));
  }
  const at::Tensor L = at::stack(logits, -1);  // [B, H, T, J]
  const at::Tensor e = at::exp(L - std::get<0>(L.max(-1, true)));
  at::Tensor sm_num = at::zeros({B, H, T, d}, opt);
  for (int64_t j = 0; j < static_cast<int64_t>(logits.size()); ++j) {
    const int64_t cnt = T - j;
    sm_num = sm_num + at::constant_pad_nd(e.select(-1, j).narrow(2, j, cnt).unsqueeze(-1) * vf.narrow(2, 0, cnt),
                                          {0, 0, j, 0});
  }
  const at::Tensor sm_den = e.sum(-1, true);
  const at::Tensor w = at::sigmoid(window_weight).view({1, H, 1, 1});
  const at::Tensor lin_num = (num_full - band_num).transpose(1, 2), lin_den = (den_full - band_den).transpose(1, 2);
  return ((w * sm_num + (1 - w) * lin_num) / (w * sm_den + (1 - w) * lin_den + eps)).transpose(1, 2);
}

std::map<std::string, at::Tensor> leaves64(const Layer& l) {
  std::map<std::string, at::Tensor> p;
  for (auto& [name, t] : l.m->lawcat_parameters()) p[name] = f64(t).requires_grad_(true);
  return p;
}

double max_rel(const at::Tensor& got, const at::Tensor& want) {
  return (f64(got) - f64(want)).abs().max().item<double>() / f64(want).abs().max().item<double>();
}

// Compares every LAWCAT parameter's gradient of the layer (fp32, batched) with float64 autograd
// through prologue64 and window_hybrid_loop_ref, for the upstream gradient dy [B, T, H*d].
void check_gradients(const Layer& l, const at::Tensor& x, const at::Tensor& dy) {
  const int64_t B = x.size(0), T = x.size(1), W = l.m->options().window;
  const at::Tensor y = l.m->lawcat_output(x, model::MixerContext{});
  y.backward(dy);
  auto p = leaves64(l);
  const Prologue r = prologue64(l, x, p);
  const at::Tensor yr = window_hybrid_loop_ref(r.q.transpose(1, 2), r.k.transpose(1, 2), r.v, r.phiq, r.phik, r.g,
                                               p.at("window_weight"), W, l.m->options().eps)
                            .reshape({B, T, kH * kd});
  yr.backward(f64(dy));
  CHECK(test::rel_rms(y, yr) < 1e-5);
  // ∂L/∂w_h sums per-token terms of size ~ (1 - σ_h)|dy·y| that cancel to ~0 for tokens with
  // nothing beyond the window (there y = σa / (σb + ε) does not depend on σ): their fp32
  // rounding is at that scale, not at the sum's (as test_gla.cpp's floor for dq).
  const at::Tensor sw = at::sigmoid(f64(l.m->window_weight));
  const at::Tensor per_head = (f64(dy) * f64(y)).view({B, T, kH, kd}).pow(2).sum({0, 1, 3}).sqrt();  // [H]
  const double ww_floor = ((1 - sw) * per_head).pow(2).mean().sqrt().item<double>();
  for (auto& [name, t] : l.m->lawcat_parameters()) {
    CAPTURE(name);
    REQUIRE(t.grad().defined());
    REQUIRE(p.at(name).grad().defined());
    REQUIRE(at::isfinite(t.grad()).all().item<bool>());
    const at::Tensor got = f64(t.grad()), want = f64(p.at(name).grad());
    const double got_rms = got.pow(2).mean().sqrt().item<double>(), want_rms = want.pow(2).mean().sqrt().item<double>();
    CAPTURE(got_rms, want_rms);
    if (T <= W && name != "window_weight") {
      // No token lies beyond the window: nothing reaches the linear path. The layer's gradient
      // is exactly 0; the loop formulation's (full sum - band) is 0 up to float64 rounding.
      CHECK(got_rms == 0.0);
      CHECK(want_rms < 1e-12);
      continue;
    }
    const double floor = name == "window_weight" ? ww_floor : 0.0;
    const double err = (got - want).pow(2).mean().sqrt().item<double>() / std::max(want_rms, floor);
    CAPTURE(floor, err);
    CHECK(err < 1e-5);
  }
}

}  // namespace

TEST_CASE("batched window hybrid equals a token-by-token float64 implementation", "[lawcat][window]") {
  const bool gate = GENERATE(false, true);
  const int64_t conv = GENERATE(0, 4);
  const int64_t W = GENERATE(64, 5);
  const int64_t T = GENERATE(1, 63, 64, 65, 200);
  CAPTURE(gate, conv, W, T);
  Layer l = make_layer(gate, conv, W);
  const at::Tensor x = at::randn({kB, T, kHidden});
  at::NoGradGuard ng;
  const at::Tensor y = l.m->lawcat_output(x, model::MixerContext{}).view({kB, T, kH, kd});
  auto p = leaves64(l);
  const at::Tensor ref = token_by_token_ref(prologue64(l, x, p), p.at("window_weight"), W, l.m->options().eps);
  const double err = max_rel(y, ref);
  CAPTURE(err);
  CHECK(err < 1e-5);
}

TEST_CASE("batched window hybrid gradients equal float64 autograd through the loop formulation",
          "[lawcat][window]") {
  const bool gate = GENERATE(false, true);
  const int64_t conv = GENERATE(0, 4);
  const int64_t W = GENERATE(64, 5);
  const int64_t T = GENERATE(1, 63, 64, 65, 200);
  CAPTURE(gate, conv, W, T);
  Layer l = make_layer(gate, conv, W);
  const at::Tensor x = at::randn({kB, T, kHidden});
  check_gradients(l, x, at::randn({kB, T, kH * kd}));
}

TEST_CASE("window hybrid with steep gates: no overflow, exact", "[lawcat][window]") {
  // log α ≈ -3 per token: the gates' running sum reaches e^-450 over the sequence, far beyond
  // fp32's range, so a single reference point per sequence (e^{G_t} · e^{-G_s}) would overflow;
  // the delayed keys are scaled by e^{G_u - G_s} over W = 5 tokens only (≈ e^-15, still seen).
  const int64_t conv = GENERATE(0, 4);
  CAPTURE(conv);
  const int64_t T = 150, W = 5;
  Layer l = make_layer(true, conv, W, -48.0);
  const at::Tensor x = at::randn({kB, T, kHidden});
  {
    at::NoGradGuard ng;
    auto p = leaves64(l);
    const at::Tensor y = l.m->lawcat_output(x, model::MixerContext{}).view({kB, T, kH, kd});
    REQUIRE(at::isfinite(y).all().item<bool>());
    const double err = max_rel(y, token_by_token_ref(prologue64(l, x, p), p.at("window_weight"), W, 1e-10));
    CAPTURE(err);
    CHECK(err < 1e-5);
  }
  check_gradients(l, x, at::randn({kB, T, kH * kd}));
}

TEST_CASE("window hybrid: prefill, a continuation and one-token steps equal one parallel pass", "[lawcat][window]") {
  const bool gate = GENERATE(false, true);
  const int64_t conv = GENERATE(0, 4);
  const int64_t W = GENERATE(64, 5);
  const int64_t prefill = GENERATE(1, 63, 70);
  CAPTURE(gate, conv, W, prefill);
  const int64_t T = 150, more = 40;
  Layer l = make_layer(gate, conv, W);
  const at::Tensor x = at::randn({kB, T, kHidden});
  at::NoGradGuard ng;
  const at::Tensor full = l.m->lawcat_output(x, model::MixerContext{});
  std::unique_ptr<model::LayerState> st = l.m->make_state(kB);
  model::MixerContext ctx;
  ctx.state = st.get();
  std::vector<at::Tensor> outs = {l.m->lawcat_output(x.narrow(1, 0, prefill), ctx),
                                  l.m->lawcat_output(x.narrow(1, prefill, more), ctx)};
  const int64_t bytes = st->memory_bytes();
  for (int64_t t = prefill + more; t < T; ++t) outs.push_back(l.m->lawcat_output(x.narrow(1, t, 1), ctx));
  const at::Tensor dec = at::cat(outs, 1);
  const double err = test::rel_rms(dec, full);
  CAPTURE(err);
  CHECK(err < 1e-5);
  if (prefill + more >= W) CHECK(st->memory_bytes() == bytes);  // the window ring is full and stays so
}

TEST_CASE("window_hybrid: one chunk_gla call on [v, 1] equals two calls (the CUDA way), whole and continued",
          "[lawcat][window]") {
  const bool gate = GENERATE(false, true);
  const int64_t W = GENERATE(64, 5);
  CAPTURE(gate, W);
  const int64_t B = 2, T = 150, H = 4, Hkv = 2, D = 8, F = 8;
  at::manual_seed(5);
  std::vector<at::Tensor> in = {at::randn({B, H, T, D}) * 2, at::randn({B, Hkv, T, D}) * 2, at::randn({B, T, Hkv, D}),
                                at::softmax(at::randn({B, T, H, F}) * 2, -1), at::softmax(at::randn({B, T, H, F}) * 2, -1),
                                gate ? at::log_sigmoid(at::randn({B, T, Hkv, F}) * 2) / 4 : at::zeros({B, T, Hkv, F}),
                                at::randn({H})};
  const at::Tensor dy = at::randn({B, T, H, D});
  std::vector<std::vector<at::Tensor>> grads;
  std::vector<at::Tensor> ys;
  for (int calls : {1, 2}) {
    std::vector<at::Tensor> x;
    for (const auto& t : in) x.push_back(t.clone().requires_grad_(true));
    model::WindowHybridOptions o;
    o.window = W;
    o.gate = gate;
    o.chunk_size = 16;
    o.gla_calls = calls;
    const at::Tensor y = model::window_hybrid(x[0], x[1], x[2], x[3], x[4], x[5], x[6], o);
    y.backward(dy);
    ys.push_back(y.detach());
    grads.emplace_back();
    for (const auto& t : x) grads.back().push_back(t.grad());
    if (calls == 2) {  // the two-call path through a decode state: 70 + 40 tokens, then steps
      at::NoGradGuard ng;
      model::WindowHybridState st;
      std::vector<at::Tensor> outs;
      auto part = [&](int64_t a, int64_t n) {
        outs.push_back(model::window_hybrid(x[0].narrow(2, a, n), x[1].narrow(2, a, n), x[2].narrow(1, a, n),
                                            x[3].narrow(1, a, n), x[4].narrow(1, a, n), x[5].narrow(1, a, n), x[6],
                                            o, &st));
      };
      part(0, 70);
      part(70, 40);
      for (int64_t t = 110; t < T; ++t) part(t, 1);
      CHECK(st.ring_size() == W);
      CHECK(test::rel_rms(at::cat(outs, 1), y) < 1e-5);
    }
  }
  CHECK(test::rel_rms(ys[1], ys[0]) < 1e-6);
  const char* names[] = {"dq_rope", "dk_rope", "dv", "dphiq", "dphik", "dg", "dwindow_weight"};
  for (size_t i = 0; i < in.size(); ++i) {
    CAPTURE(names[i]);
    REQUIRE(grads[0][i].defined());
    if (!gate && i == 5) continue;  // g is unused without a gate
    CHECK(test::rel_rms(grads[1][i], grads[0][i]) < 1e-6);
  }
}

TEST_CASE("window hybrid layer on CUDA equals the CPU path", "[lawcat][window][cuda]") {
  LAWCAT_REQUIRE_CUDA_OR_SKIP();
  const bool gate = GENERATE(false, true);
  const int64_t conv = GENERATE(0, 4);
  CAPTURE(gate, conv);
  const int64_t T = 200, W = 64;
  Layer l = make_layer(gate, conv, W);
  const at::Tensor x = at::randn({kB, T, kHidden}), dy = at::randn({kB, T, kH * kd});
  l.m->lawcat_output(x, model::MixerContext{}).backward(dy);
  std::map<std::string, at::Tensor> cpu_grads;
  for (auto& [name, t] : l.m->lawcat_parameters()) cpu_grads[name] = t.grad().clone();
  const at::Tensor y_cpu = l.m->lawcat_output(x, model::MixerContext{}).detach();
  l.m->to(at::kCUDA);
  l.m->zero_grad();
  const at::Tensor xc = x.to(at::kCUDA);
  const at::Tensor y = l.m->lawcat_output(xc, model::MixerContext{});
  y.backward(dy.to(at::kCUDA));
  CHECK(test::rel_rms(y.cpu(), y_cpu) < 1e-5);
  for (auto& [name, t] : l.m->lawcat_parameters()) {
    CAPTURE(name);
    REQUIRE(t.grad().defined());
    CHECK(test::rel_rms(t.grad().cpu(), cpu_grads.at(name)) < 1e-4);
  }
  // Decoding on CUDA: prefill 100, then one token at a time.
  at::NoGradGuard ng;
  std::unique_ptr<model::LayerState> st = l.m->make_state(kB);
  model::MixerContext ctx;
  ctx.state = st.get();
  std::vector<at::Tensor> outs = {l.m->lawcat_output(xc.narrow(1, 0, 100), ctx)};
  for (int64_t t = 100; t < T; ++t) outs.push_back(l.m->lawcat_output(xc.narrow(1, t, 1), ctx));
  CHECK(test::rel_rms(at::cat(outs, 1).cpu(), y_cpu) < 1e-5);
}
