// The LAWCAT layer (W = 0) and its LoLCATs window hybrid against a token-by-token float64
// implementation written from docs/architecture.md ("The LAWCAT layer") / the LoLCATs formula
// (independent of the layer's
// chunked and batched code): softmax over the last W tokens (raw projections, max-shifted)
// plus the normalized gated linear sum over older tokens, one shared normalizer.
#include <ATen/ATen.h>

#include <cmath>

#include "common/catch.h"
#include "config/schema.h"
#include "model/attention.h"
#include "model/lawcat_attention.h"

using namespace lawcat;

TEST_CASE("LAWCAT layer and window hybrid equal a token-by-token float64 implementation", "[lawcat][window]") {
  at::manual_seed(3);
  const int64_t D = 32, H = 4, Hkv = 2, d = 8, T = 45, c = 4, r = 4;
  const int64_t W = GENERATE(0, 1, 5, 8, 64);
  CAPTURE(W);
  model::LlamaAttention teacher =
      std::make_shared<model::LlamaAttentionImpl>(model::LlamaAttentionOptions(D, H, Hkv, d));
  config::AttentionConfig a;
  a.gate_rank = r;
  a.window = W;
  auto opts = model::lawcat_options_from_config(a, D, H, Hkv, d);
  auto m = std::make_shared<model::LawcatAttentionImpl>(opts, teacher);
  {
    at::NoGradGuard ng;
    for (auto& p : teacher->parameters()) p.normal_(0, 0.4);
    m->conv_q.normal_(0, 0.5);
    m->conv_k.normal_(0, 0.5);
    m->feature_map.normal_(0, 0.5);
    m->gate_up->bias.normal_(0, 2);
    m->gate_up->weight.normal_(0, 0.5);
    m->gate_down->weight.normal_(0, 0.5);
    if (W > 0) m->window_weight.normal_(0, 1);
  }
  const at::Tensor x = at::randn({1, T, D});
  model::MixerContext ctx;  // no RoPE tables: the window part uses the raw projections
  at::NoGradGuard ng;
  const at::Tensor y = m->lawcat_output(x, ctx).view({T, H, d}).to(at::kDouble);

  auto dbl = [](const at::Tensor& t) { return t.to(at::kDouble); };
  const at::Tensor x0 = dbl(x[0]);
  const at::Tensor q = at::linear(x0, dbl(m->q_proj->weight)).view({T, H, d});
  const at::Tensor k = at::linear(x0, dbl(m->k_proj->weight)).view({T, Hkv, d});
  const at::Tensor v = at::linear(x0, dbl(m->v_proj->weight)).view({T, Hkv, d});
  const int64_t g = H / Hkv, f = d / 2;
  const at::Tensor wq = dbl(m->conv_q).view({H, d, c}), wk = dbl(m->conv_k).view({H, d, c});
  const at::Tensor krep = k.repeat_interleave(g, 1);
  auto conv = [&](const at::Tensor& u, const at::Tensor& w) {
    at::Tensor out = at::zeros_like(u);
    for (int64_t t = 0; t < T; ++t)
      for (int64_t j = 0; j < c; ++j)
        if (t - c + 1 + j >= 0) out[t] += w.select(2, j) * u[t - c + 1 + j];
    return out;
  };
  const at::Tensor qt = conv(q, wq), kt = conv(krep, wk);
  const at::Tensor Wphi = dbl(m->feature_map);
  auto phi = [&](const at::Tensor& u, int64_t h) {
    const at::Tensor p = at::matmul(u, Wphi[h]);
    return at::clamp_min(at::cat({at::softmax(p, -1), at::softmax(-p, -1)}), 1e-12);
  };
  const at::Tensor logits = at::linear(at::linear(x0, dbl(m->gate_down->weight)), dbl(m->gate_up->weight),
                                       dbl(m->gate_up->bias));
  const at::Tensor G = (at::log_sigmoid(logits) / a.gate_tau).view({T, Hkv, 2 * f}).cumsum(0);
  const double eps = opts.eps;
  at::Tensor ref = at::zeros({T, H, d}, at::kDouble);
  for (int64_t h = 0; h < H; ++h) {
    const int64_t hk = h / g;
    const double sw = W > 0 ? 1.0 / (1.0 + std::exp(-m->window_weight[h].item<double>())) : 0.0;
    for (int64_t t = 0; t < T; ++t) {
      const int64_t first = std::max<int64_t>(0, t - W + 1);
      double mx = -INFINITY;
      for (int64_t s = first; s <= t; ++s)
        mx = std::max(mx, at::dot(q[t][h], k[s][hk]).item<double>() / std::sqrt(double(d)));
      at::Tensor num = at::zeros({d}, at::kDouble);
      double den = 0;
      for (int64_t s = first; s <= t; ++s) {
        const double e = std::exp(at::dot(q[t][h], k[s][hk]).item<double>() / std::sqrt(double(d)) - mx);
        num += sw * e * v[s][hk];
        den += sw * e;
      }
      const at::Tensor pq = phi(qt[t][h], h);
      for (int64_t s = 0; s < first; ++s) {
        const double A = (pq * phi(kt[s][h], h) * at::exp(G[t][hk] - G[s][hk])).sum().item<double>();
        num += (1 - sw) * A * v[s][hk];
        den += (1 - sw) * A;
      }
      ref[t][h] = num / (den + eps);
    }
  }
  const double err = (y - ref).abs().max().item<double>() / ref.abs().max().item<double>();
  CAPTURE(err);
  CHECK(err < 1e-5);
}
