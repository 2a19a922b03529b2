// Window hybrid: blocked softmax over the band plus the lagged linear sum (see the header).
//
// Tokens in view: the state's ring (P ≤ W tokens, decoding only), then the T new ones: N = P + T.
//
// Softmax part. The view is zero-padded to nb·W and cut into nb blocks of W. Query i of block b
// sees key j of [block b-1, block b] (2W keys) at distance t - s = W + i - j, so the band
// 0 ≤ t - s < W is i < j ≤ i + W (and j ≥ W in block 0, which has no previous block). The ring's
// P positions get zero queries whose rows are dropped.
//
// Linear part. New token i (position u) gets as delayed key the token s = u - W, at view index
// P - W + i (zero before the sequence start), scaled by e^{G_u - G_s}: the exponent is the sum of
// the W log-gates of (s, u] (≤ 0), a difference of the gates' running sum taken in float64 so
// that it keeps fp32 accuracy however long the sequence.
#include "model/window_hybrid.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "ops/gla.h"

namespace lawcat::model {

int64_t WindowHybridState::memory_bytes() const {
  int64_t n = 0;
  for (const at::Tensor* t : {&S, &z, &k, &v, &phik, &g, &valid})
    if (t->defined()) n += t->numel() * t->element_size();
  return n;
}

namespace {

// n zero steps in front of dim `dim` (time).
at::Tensor pad_time_front(const at::Tensor& x, int64_t dim, int64_t n) {
  if (n == 0) return x;
  std::vector<int64_t> pad(2 * (x.dim() - dim), 0);
  pad[pad.size() - 2] = n;
  return at::constant_pad_nd(x, pad);
}

// [B, X, N, C] -> [B, X, nb, W, C], zero-padded at the end of time to nb·W.
at::Tensor to_blocks(const at::Tensor& x, int64_t W, int64_t nb) {
  const int64_t pad = nb * W - x.size(2);
  const at::Tensor p = pad > 0 ? at::constant_pad_nd(x, {0, 0, 0, pad}) : x;
  return p.reshape({x.size(0), x.size(1), nb, W, x.size(3)});
}

// The keys of each query block, [previous block (zeros for block 0), own block]:
// [B, X, nb, W, C] -> [B, X, nb, 2W, C].
at::Tensor with_previous(const at::Tensor& xb) {
  const at::Tensor prev = at::constant_pad_nd(xb, {0, 0, 0, 0, 1, 0}).narrow(2, 0, xb.size(2));
  return at::cat({prev, xb}, 3);
}

// Kv heads to query heads (query head h reads kv head h / grp), along dim `dim`.
at::Tensor expand_heads(const at::Tensor& x, int64_t dim, int64_t grp) {
  if (grp == 1) return x;
  std::vector<int64_t> sizes = x.sizes().vec(), out = x.sizes().vec();
  sizes.insert(sizes.begin() + dim + 1, grp);
  out[dim] *= grp;
  return x.unsqueeze(dim + 1).expand(sizes).reshape(out);
}

// [nb, W, 2W] bool: query i of block b sees key j of [block b-1, block b] (0 ≤ W + i - j < W, s ≥ 0).
at::Tensor band_mask(int64_t W, int64_t nb, const at::Device& device) {
  const auto opts = at::TensorOptions().dtype(at::kLong).device(device);
  const at::Tensor i = at::arange(W, opts).view({W, 1}), j = at::arange(2 * W, opts).view({1, 2 * W});
  at::Tensor band = at::logical_and(j > i, j <= i + W).unsqueeze(0).repeat({nb, 1, 1});
  band.select(0, 0).narrow(1, 0, W).fill_(false);
  return band;
}

// The N = P + T tokens in view: the state's ring (P ≤ W tokens, none without a state), then
// the T new ones; and which of them are real keys (left-padded batches: [B, N] bool,
// undefined = all).
struct TokensInView {
  at::Tensor kr;      // [B, Hkv, N, D] RoPE'd keys
  at::Tensor vv;      // [B, N, Hkv, d]
  at::Tensor pk;      // [B, N, H, F] φk
  at::Tensor gg;      // [B, N, Hkv, F] fp32 log-gates
  at::Tensor kvalid;  // [B, N] bool or undefined
};
TokensInView tokens_in_view(const WindowHybridState* st, const at::Tensor& k_rope, const at::Tensor& v,
                            const at::Tensor& phik, const at::Tensor& g, const at::Tensor& valid) {
  const int64_t B = phik.size(0), T = phik.size(1), P = st ? st->ring_size() : 0;
  TokensInView x{k_rope, v, phik, g.to(at::kFloat), at::Tensor()};
  if (P > 0) {
    x.kr = at::cat({st->k, x.kr}, 2);
    x.vv = at::cat({st->v, x.vv}, 1);
    x.pk = at::cat({st->phik, x.pk}, 1);
    x.gg = at::cat({st->g, x.gg}, 1);
  }
  if (valid.defined() || (st && st->valid.defined())) {
    TORCH_CHECK(!valid.defined() || (valid.dim() == 2 && valid.size(0) == B && valid.size(1) == T),
                "window_hybrid: valid must be [B, T] = [", B, ", ", T, "], got ", valid.sizes());
    const auto bopts = at::TensorOptions().dtype(at::kBool).device(phik.device());
    x.kvalid = valid.defined() ? valid.to(bopts) : at::ones({B, T}, bopts);
    if (P > 0) x.kvalid = at::cat({st->valid.defined() ? st->valid : at::ones({B, P}, bopts), x.kvalid}, 1);
  }
  return x;
}

// The state's ring after these tokens: the last (up to) W in view, the next token's window and
// the next delayed key.
void keep_ring(WindowHybridState& st, const TokensInView& x, int64_t W) {
  const int64_t N = x.kr.size(2), keep = std::min(W, N);
  st.k = x.kr.narrow(2, N - keep, keep).detach().contiguous();
  st.v = x.vv.narrow(1, N - keep, keep).detach().contiguous();
  st.phik = x.pk.narrow(1, N - keep, keep).detach().contiguous();
  st.g = x.gg.narrow(1, N - keep, keep).detach().contiguous();
  if (x.kvalid.defined()) st.valid = x.kvalid.narrow(1, N - keep, keep).contiguous();
}

// One decoding step (T = 1 with a state, no autograd): the same sums as below without the
// blocks, which would spend 2W query rows and a [W, 2W] band on the one new query (a window
// student decoded 2x (13M) to 8x (260K params) slower than a pure one that way). The softmax
// part reads the last W keys in view; the linear part is one ops::gla_step of the token leaving
// the window (view index P - W, zero while the ring is not full), rescaled by its W gates.
at::Tensor window_hybrid_step(const at::Tensor& q_rope, const at::Tensor& k_rope, const at::Tensor& v,
                              const at::Tensor& phiq, const at::Tensor& phik, const at::Tensor& g,
                              const at::Tensor& window_weight, const WindowHybridOptions& o,
                              WindowHybridState& st, const at::Tensor& valid) {
  const int64_t B = phiq.size(0), H = phiq.size(2), F = phiq.size(3), Hkv = v.size(2), d = v.size(3);
  const int64_t grp = H / Hkv, W = o.window, P = st.ring_size(), N = P + 1;
  const TokensInView x = tokens_in_view(&st, k_rope, v, phik, g, valid);
  const at::Tensor &kr = x.kr, &vv = x.vv, &pk = x.pk, &gg = x.gg, &kvalid = x.kvalid;

  // Softmax over the band: view indices j0 .. N-1 (the token itself and up to W-1 before it).
  const int64_t j0 = std::max<int64_t>(0, N - W), n = N - j0;
  const at::Tensor keys = expand_heads(kr.narrow(2, j0, n).to(at::kFloat), 1, grp);                 // [B, H, n, D]
  const at::Tensor vals = expand_heads(vv.narrow(1, j0, n).to(at::kFloat).transpose(1, 2), 1, grp);  // [B, H, n, d]
  const double scale = 1.0 / std::sqrt(static_cast<double>(q_rope.size(3)));
  at::Tensor logits = at::matmul(q_rope.to(at::kFloat), keys.transpose(-1, -2)).mul(scale);        // [B, H, 1, n]
  if (kvalid.defined()) {  // pad keys out, the token's own key kept (as in the blocked path)
    at::Tensor ok = kvalid.narrow(1, j0, n).clone();
    ok.select(1, n - 1).fill_(true);
    logits = logits.masked_fill(ok.logical_not().view({B, 1, 1, n}), -INFINITY);
  }
  const at::Tensor e = at::exp(logits - std::get<0>(logits.max(-1, true)));
  const at::Tensor sm_num = at::matmul(e, vals).squeeze(2);   // [B, H, d]
  const at::Tensor sm_den = e.sum(-1).squeeze(2);              // [B, H]

  // Linear part: the token leaving the window enters the state, scaled by e^{G_u - G_s} (the
  // W gates after it, summed in float64 as the running sum of the blocked path).
  at::Tensor k_lag, v_lag;
  if (P == W) {
    k_lag = pk.select(1, 0);                                   // [B, H, F]
    v_lag = vv.select(1, 0);                                   // [B, Hkv, d]
    if (o.gate) {
      const at::Tensor decay = at::exp(gg.narrow(1, 1, W).to(at::kDouble).sum(1).to(at::kFloat));  // [B, Hkv, F]
      k_lag = (k_lag.to(at::kFloat) * expand_heads(decay, 1, grp)).to(phik.scalar_type());
    }
  } else {
    k_lag = at::zeros({B, H, F}, phik.options());
    v_lag = at::zeros({B, Hkv, d}, v.options());
  }
  if (!st.S.defined()) {
    st.S = at::zeros({B, H, F, d}, phiq.options().dtype(at::kFloat));
    st.z = at::zeros({B, H, F}, phiq.options().dtype(at::kFloat));
  }
  ops::GlaOptions raw;
  raw.normalize = false;
  const at::Tensor q1 = phiq.select(1, 0);
  const at::Tensor lin_num = ops::gla_step(q1, k_lag, v_lag, gg.select(1, N - 1), st.S, st.z, raw).to(at::kFloat);
  const at::Tensor lin_den = (q1.to(at::kFloat) * st.z).sum(-1);  // [B, H]

  const at::Tensor w = at::sigmoid(window_weight.to(at::kFloat)).view({1, H});
  const at::Tensor y = (w.unsqueeze(-1) * sm_num + (1 - w.unsqueeze(-1)) * lin_num) /
                       (w * sm_den + (1 - w) * lin_den + o.eps).unsqueeze(-1);   // [B, H, d]

  keep_ring(st, x, W);
  return y.unsqueeze(1).to(v.scalar_type());  // [B, 1, H, d]
}

}  // namespace

at::Tensor window_hybrid(const at::Tensor& q_rope, const at::Tensor& k_rope, const at::Tensor& v,
                         const at::Tensor& phiq, const at::Tensor& phik, const at::Tensor& g,
                         const at::Tensor& window_weight, const WindowHybridOptions& o, WindowHybridState* st,
                         const at::Tensor& valid) {
  TORCH_CHECK(o.window >= 1, "window_hybrid: window must be >= 1, got ", o.window);
  TORCH_CHECK(phiq.dim() == 4 && phik.sizes() == phiq.sizes(), "window_hybrid: phiq ", phiq.sizes(), " and phik ",
              phik.sizes(), " must both be [B, T, H, F]");
  const int64_t B = phiq.size(0), T = phiq.size(1), H = phiq.size(2), F = phiq.size(3);
  TORCH_CHECK(v.dim() == 4 && v.size(0) == B && v.size(1) == T && v.size(2) >= 1 && H % v.size(2) == 0,
              "window_hybrid: v must be [B, T, Hkv, d] with H = ", H, " a multiple of Hkv, got ", v.sizes(),
              " (phiq ", phiq.sizes(), ")");
  const int64_t Hkv = v.size(2), d = v.size(3), grp = H / Hkv, W = o.window;
  TORCH_CHECK(q_rope.dim() == 4 && q_rope.size(0) == B && q_rope.size(1) == H && q_rope.size(2) == T,
              "window_hybrid: q_rope must be [B, H, T, D] = [", B, ", ", H, ", ", T, ", D], got ", q_rope.sizes());
  TORCH_CHECK(k_rope.dim() == 4 && k_rope.size(0) == B && k_rope.size(1) == Hkv && k_rope.size(2) == T &&
                  k_rope.size(3) == q_rope.size(3),
              "window_hybrid: k_rope must be [B, Hkv, T, D] = [", B, ", ", Hkv, ", ", T, ", ", q_rope.size(3),
              "], got ", k_rope.sizes());
  TORCH_CHECK(g.dim() == 4 && g.size(0) == B && g.size(1) == T && g.size(2) == Hkv && g.size(3) == F,
              "window_hybrid: g must be [B, T, Hkv, F] = [", B, ", ", T, ", ", Hkv, ", ", F, "], got ", g.sizes());
  TORCH_CHECK(window_weight.dim() == 1 && window_weight.size(0) == H, "window_hybrid: window_weight must be [H] = [",
              H, "], got ", window_weight.sizes());

  // The N = P + T tokens in view: the state's ring (P ≤ W tokens), then these T.
  const int64_t P = st ? st->ring_size() : 0, N = P + T;
  TORCH_CHECK(P <= W, "window_hybrid: the state's ring holds ", P, " tokens, more than the window ", W);
  if (st && T == 1 && !at::GradMode::is_enabled())
    return window_hybrid_step(q_rope, k_rope, v, phiq, phik, g, window_weight, o, *st, valid);
  const TokensInView x = tokens_in_view(st, k_rope, v, phik, g, valid);
  const at::Tensor &kr = x.kr, &vv = x.vv, &pk = x.pk, &gg = x.gg, &kvalid = x.kvalid;

  // Linear part over s ≤ t - W: chunk_gla against the keys and values delayed by W tokens.
  // Query i's delayed token is view index P - W + i: pad the view in front to W + T, take T.
  const at::Tensor v_lag = pad_time_front(vv, 1, W - P).narrow(1, 0, T);   // [B, T, Hkv, d]
  at::Tensor k_lag = pad_time_front(pk, 1, W - P).narrow(1, 0, T);         // [B, T, H, F]
  if (o.gate) {
    // e^{G_u - G_s} over the W gates of (s, u], from a float64 running sum.      [B, T, Hkv, F]
    const at::Tensor G = pad_time_front(gg, 1, W - P).to(at::kDouble).cumsum(1);
    const at::Tensor decay = at::exp((G.narrow(1, W, T) - G.narrow(1, 0, T)).to(at::kFloat));
    k_lag = (k_lag.to(at::kFloat) * expand_heads(decay, 2, grp)).to(phik.scalar_type());
  }
  // Numerator and denominator: the denominator is the numerator of a value column of ones
  // (whose state is z); one call on [v, 1] or two (options.gla_calls).
  ops::GlaOptions raw;
  raw.chunk_size = o.chunk_size;
  raw.normalize = false;
  const at::Tensor ones = at::ones({B, T, Hkv, 1}, v.options());
  if (st && !st->S.defined()) {
    st->S = at::zeros({B, H, F, d}, phiq.options().dtype(at::kFloat));
    st->z = at::zeros({B, H, F}, phiq.options().dtype(at::kFloat));
  }
  auto gla = [&](const at::Tensor& values, const at::Tensor& s0) {
    return st ? ops::chunk_gla(phiq, k_lag, values, g, s0, st->z, raw)
              : ops::chunk_gla(phiq, k_lag, values, g, std::nullopt, std::nullopt, raw);
  };
  at::Tensor lin_num, lin_den;  // [B, T, H, d], [B, T, H, 1]
  ops::GlaResult r;             // its state / normalizer: S (first d columns of V) and z after these T
  TORCH_CHECK(o.gla_calls >= 0 && o.gla_calls <= 2, "window_hybrid: gla_calls must be 0, 1 or 2, got ", o.gla_calls);
  if (o.gla_calls == 1 || (o.gla_calls == 0 && !phiq.is_cuda())) {
    r = gla(at::cat({v_lag, ones}, -1), st ? at::cat({st->S, st->z.unsqueeze(-1)}, -1) : at::Tensor());
    lin_num = r.y.narrow(-1, 0, d);
    lin_den = r.y.narrow(-1, d, 1);
  } else {
    r = gla(v_lag, st ? st->S : at::Tensor());
    lin_num = r.y;
    lin_den = gla(ones, st ? st->z.unsqueeze(-1).contiguous() : at::Tensor()).y;
  }
  if (st) {
    st->S = r.state.narrow(-1, 0, d).detach().contiguous();
    st->z = r.normalizer.detach();
  }

  // Softmax part over the band, blocked; the ring's P positions get zero queries (dropped).
  const int64_t nb = (N + W - 1) / W;
  const at::Tensor off_band = band_mask(W, nb, phiq.device()).logical_not();                    // [nb, W, 2W]
  const at::Tensor qb = to_blocks(pad_time_front(q_rope.to(at::kFloat), 2, P), W, nb);          // [B, H, nb, W, D]
  const at::Tensor kb = with_previous(to_blocks(expand_heads(kr.to(at::kFloat), 1, grp), W, nb));  // [B, H, nb, 2W, D]
  const at::Tensor vb =
      with_previous(to_blocks(expand_heads(vv.to(at::kFloat).transpose(1, 2), 1, grp), W, nb));  // [B, H, nb, 2W, d]
  const double scale = 1.0 / std::sqrt(static_cast<double>(q_rope.size(3)));
  at::Tensor logits = at::matmul(qb, kb.transpose(-1, -2)).mul(scale).masked_fill(off_band, -INFINITY);
  if (kvalid.defined()) {
    // Pad keys out of every query's band, but a query's own key (j = i + W): pad queries keep a
    // finite row. [B, N] -> [B, 1, nb, 1, 2W] as the keys are blocked.
    const at::Tensor kv = with_previous(to_blocks(kvalid.to(at::kFloat).view({B, 1, N, 1}), W, nb));  // [B,1,nb,2W,1]
    const auto lopts = at::TensorOptions().dtype(at::kLong).device(phiq.device());
    const at::Tensor own = at::arange(2 * W, lopts).view({1, 2 * W}) == (at::arange(W, lopts) + W).view({W, 1});
    const at::Tensor pad_key = kv.squeeze(-1).unsqueeze(3).lt(0.5).logical_and(own.logical_not());  // [B,1,nb,W,2W]
    logits = logits.masked_fill(pad_key, -INFINITY);
  }
  const at::Tensor e = at::exp(logits - std::get<0>(logits.max(-1, true)));                  // [B, H, nb, W, 2W]
  const at::Tensor sm_num = at::matmul(e, vb).view({B, H, nb * W, d}).narrow(2, P, T);       // [B, H, T, d]
  const at::Tensor sm_den = e.sum(-1).view({B, H, nb * W, 1}).narrow(2, P, T);              // [B, H, T, 1]

  // One shared normalizer.
  const at::Tensor w = at::sigmoid(window_weight.to(at::kFloat)).view({1, H, 1, 1});
  const at::Tensor y = (w * sm_num + (1 - w) * lin_num.to(at::kFloat).transpose(1, 2)) /
                       (w * sm_den + (1 - w) * lin_den.to(at::kFloat).transpose(1, 2) + o.eps);

  if (st) keep_ring(*st, x, W);
  return y.transpose(1, 2).to(v.scalar_type());  // [B, T, H, d]
}

}  // namespace lawcat::model
