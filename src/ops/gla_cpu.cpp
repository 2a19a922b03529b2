// Chunked normalized gated linear attention on CPU (see gla_cpu.h, docs/kernels.md
// "Algorithm"). Per chunk of L <= C tokens, for every (batch, kv head) at once
// and the G = H / Hkv query heads of a group batched beside them (shapes below
// drop the leading [B, Hkv]):
//
//   Gc[t]   = sum_{j<=t} log a_j                         [L, F]  (inclusive)
//   qg[t]   = q_t * exp(Gc[t])                           [G, L, F]
//   kd[s]   = k_s * exp(sum_{j>s} log a_j)               [G, L, F]
//   D[t,s]  = exp(sum_{s<j<=t} log a_j) for s <= t, 0 above the diagonal   [L, L, F]
//   A[t,s]  = sum_f q_t[f] k_s[f] D[t,s,f]               [G, L, L]
//   num     = qg S_prev + A v                            [G, L, V]
//   den     = qg z_prev + rowsum(A) + eps                [G, L]
//   S_next  = exp(Gc[L-1]) * S_prev + kd^T v,   z_next = exp(Gc[L-1]) * z_prev + sum_s kd
//
// Every exponent is a sum of log-gates, so <= 0: nothing overflows. The exponents
// of kd and D are summed directly over their own range (a suffix sum; a masked
// cumulative sum per (t, s) pair, element-wise in fp32) rather than taken as
// differences Gc[t] - Gc[s] of chunk prefix sums: with log a ~ -20 those reach
// ~-1300 over a chunk, whose fp32 spacing (1e-4) would become a 1e-4 relative
// error on the weight of a recent token behind a near-1 gate.
//
// The backward runs the chunks in reverse carrying (dS, dz), recomputing every
// chunk's intermediates; the chunk-start states come from one forward sweep that
// keeps only them ([T/C, B, H, F, V]). The log-gate gradient is assembled from its
// three paths without differences of large terms (which would cancel badly for
// very negative gates):
//   dg_j = sum_{t>=j} X_t  +  sum_{t<j} Y_t  +  sum_{t>=j, s<j} M[t,s]  +  Zl
// with X = dqg * qg (through exp(Gc)), Y = dkd * kd (through exp(sum_{j>s} log a_j)),
// M = dA * q k D strictly below the diagonal (through D), Zl the chunk decay term
// (all summed over the G query heads that share the gate).
#include "ops/gla_cpu.h"

#include <algorithm>
#include <limits>
#include <vector>

namespace lawcat::ops::cpu {
namespace {

struct Dims {
  int64_t B, T, H, Hkv, G, F, V;  // G = H / Hkv query heads per kv head
};

Dims dims_of(const at::Tensor& q, const at::Tensor& v) {
  Dims d{};
  d.B = q.size(0);
  d.T = q.size(1);
  d.H = q.size(2);
  d.F = q.size(3);
  d.Hkv = v.size(2);
  d.V = v.size(3);
  d.G = d.H / d.Hkv;
  return d;
}

at::ScalarType compute_dtype(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                             const at::Tensor& g) {
  for (const at::Tensor* t : {&q, &k, &v, &g})
    if (t->scalar_type() == at::kDouble) return at::kDouble;
  return at::kFloat;
}

// [B, T, H, X] -> [B, Hkv, G, T, X] contiguous, in dtype dt.
at::Tensor heads_to_work(const at::Tensor& x, const Dims& d, at::ScalarType dt) {
  return x.to(dt).reshape({d.B, d.T, d.Hkv, d.G, x.size(3)}).permute({0, 2, 3, 1, 4}).contiguous();
}
// [B, Hkv, G, T, X] -> [B, T, H, X] in dtype dt.
at::Tensor work_to_heads(const at::Tensor& x, const Dims& d, at::ScalarType dt) {
  return x.permute({0, 3, 1, 2, 4}).reshape({d.B, d.T, d.H, x.size(4)}).to(dt);
}
// [B, T, Hkv, X] <-> [B, Hkv, T, X]
at::Tensor kv_to_work(const at::Tensor& x, at::ScalarType dt) {
  return x.to(dt).permute({0, 2, 1, 3}).contiguous();
}
at::Tensor work_to_kv(const at::Tensor& x, at::ScalarType dt) {
  return x.permute({0, 2, 1, 3}).to(dt);
}
// [B, H, ...] state -> [B, Hkv, G, ...] (a fresh contiguous tensor in dt), zeros when undefined.
at::Tensor state_to_work(const at::Tensor& s, const Dims& d, at::IntArrayRef tail,
                         at::ScalarType dt, const at::TensorOptions& opts) {
  std::vector<int64_t> shape{d.B, d.Hkv, d.G};
  shape.insert(shape.end(), tail.begin(), tail.end());
  if (!s.defined()) return at::zeros(shape, opts.dtype(dt));
  return s.to(dt).reshape(shape).clone(at::MemoryFormat::Contiguous);
}

// Masks over (t, s) in a chunk, [C, C, 1] so they broadcast over F.
struct Masks {
  at::Tensor above;       // s > t   (not causal)
  at::Tensor not_strict;  // s >= t  (t not strictly after s)
  explicit Masks(int64_t C) {
    const at::Tensor ones = at::ones({C, C}, at::kBool);
    above = ones.triu(1).unsqueeze(-1);
    not_strict = ones.triu(0).unsqueeze(-1);
  }
  at::Tensor above_for(int64_t L) const { return above.narrow(0, 0, L).narrow(1, 0, L); }
  at::Tensor not_strict_for(int64_t L) const { return not_strict.narrow(0, 0, L).narrow(1, 0, L); }
};

// Intra-chunk pieces shared by the forward and the backward. Leading dims [B, Hkv]
// everywhere; the G query heads of a kv head are dim 2 of the per-head tensors.
struct Chunk {
  at::Tensor Gc;   // [B, Hkv, L, F] inclusive cumulative log-gate
  at::Tensor eGl;  // [B, Hkv, F] exp(Gc[L-1]): decay across the whole chunk
  at::Tensor ekd;  // [B, Hkv, L, F] exp(sum_{j>s} log a_j)
  at::Tensor kd;   // [B, Hkv, G, L, F] k * ekd
  at::Tensor eG;   // [B, Hkv, L, F] exp(Gc)
  at::Tensor qg;   // [B, Hkv, G, L, F] q * eG
  at::Tensor D;    // [B, Hkv, L, L, F] exp(sum_{s<j<=t} log a_j) for s <= t, 0 above
  at::Tensor A;    // [B, Hkv, G, L, L] intra-chunk scores
};

// What the state carry needs: Gc, eGl, ekd, kd. kc [B,Hkv,G,L,F], gc [B,Hkv,L,F].
void chunk_carry(Chunk& c, const at::Tensor& kc, const at::Tensor& gc) {
  const int64_t L = gc.size(2);
  c.Gc = gc.cumsum(2);
  c.eGl = c.Gc.select(2, L - 1).exp();
  const at::Tensor suffix = gc.flip(2).cumsum(2).flip(2);  // sum_{j>=s}
  const at::Tensor after =
      at::cat({suffix.narrow(2, 1, L - 1), at::zeros_like(gc.narrow(2, 0, 1))}, 2);
  c.ekd = after.exp();
  c.kd = kc * c.ekd.unsqueeze(2);
}

// What the outputs need: eG, qg, D, A (after chunk_carry).
void chunk_scores(Chunk& c, const at::Tensor& qc, const at::Tensor& kc, const at::Tensor& gc,
                  const Masks& m) {
  const int64_t B = gc.size(0), Hkv = gc.size(1), L = gc.size(2), F = gc.size(3);
  c.eG = c.Gc.exp();
  c.qg = qc * c.eG.unsqueeze(2);
  // P[t, s] = sum_{s<j<=t} log a_j: cumulative sum over t of log a_t masked to t > s.
  const at::Tensor P =
      gc.unsqueeze(3).expand({B, Hkv, L, L, F}).masked_fill(m.not_strict_for(L), 0).cumsum(2);
  c.D = P.masked_fill(m.above_for(L), -std::numeric_limits<double>::infinity()).exp();
  c.A = (qc.unsqueeze(4) * kc.unsqueeze(3) * c.D.unsqueeze(2)).sum(-1);
}

// [B, Hkv, X] -> [B, Hkv, 1, X, 1] (per kv head, broadcast over G and V).
at::Tensor per_state_row(const at::Tensor& x) { return x.unsqueeze(2).unsqueeze(-1); }

}  // namespace

std::tuple<at::Tensor, at::Tensor, at::Tensor> chunk_gla_fwd(
    const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& g,
    const at::Tensor& s0, const at::Tensor& z0, const GlaOptions& options) {
  at::NoGradGuard no_grad;
  const Dims d = dims_of(q, v);
  const auto dt = compute_dtype(q, k, v, g);
  const int64_t C = options.chunk_size;
  const at::Tensor qw = heads_to_work(q, d, dt), kw = heads_to_work(k, d, dt);  // [B,Hkv,G,T,F]
  const at::Tensor vw = kv_to_work(v, dt), gw = kv_to_work(g, dt);  // [B,Hkv,T,V], [B,Hkv,T,F]
  at::Tensor yw = at::empty({d.B, d.Hkv, d.G, d.T, d.V}, q.options().dtype(dt));
  at::Tensor S = state_to_work(s0, d, {d.F, d.V}, dt, q.options());  // [B,Hkv,G,F,V]
  at::Tensor z = state_to_work(z0, d, {d.F}, dt, q.options());       // [B,Hkv,G,F]
  const Masks masks(std::max<int64_t>(1, std::min(C, d.T)));

  for (int64_t t0 = 0; t0 < d.T; t0 += C) {
    const int64_t L = std::min(C, d.T - t0);
    const at::Tensor qc = qw.narrow(3, t0, L), kc = kw.narrow(3, t0, L);  // [B,Hkv,G,L,F]
    const at::Tensor vc = vw.narrow(2, t0, L).unsqueeze(2);               // [B,Hkv,1,L,V]
    const at::Tensor gc = gw.narrow(2, t0, L);                            // [B,Hkv,L,F]
    Chunk c;
    chunk_carry(c, kc, gc);
    chunk_scores(c, qc, kc, gc, masks);
    at::Tensor num = at::matmul(c.qg, S) + at::matmul(c.A, vc);  // [B,Hkv,G,L,V]
    if (options.normalize) {
      const at::Tensor den =
          at::matmul(c.qg, z.unsqueeze(-1)).squeeze(-1) + c.A.sum(-1) + options.eps;  // [..,L]
      num = num / den.unsqueeze(-1);
    }
    yw.narrow(3, t0, L).copy_(num);
    S = S * per_state_row(c.eGl) + at::matmul(c.kd.transpose(-1, -2), vc);
    z = z * c.eGl.unsqueeze(2) + c.kd.sum(3);
  }

  return {work_to_heads(yw, d, v.scalar_type()), S.view({d.B, d.H, d.F, d.V}),
          z.view({d.B, d.H, d.F})};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> chunk_gla_bwd(
    const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& g,
    const at::Tensor& s0, const at::Tensor& z0, const at::Tensor& dy, const at::Tensor& dS_T,
    const at::Tensor& dz_T, const GlaOptions& options) {
  at::NoGradGuard no_grad;
  const Dims d = dims_of(q, v);
  const auto dt = compute_dtype(q, k, v, g);
  const auto opts = q.options().dtype(dt);
  const int64_t C = options.chunk_size;
  const int64_t NC = (d.T + C - 1) / C;
  const at::Tensor qw = heads_to_work(q, d, dt), kw = heads_to_work(k, d, dt);  // [B,Hkv,G,T,F]
  const at::Tensor vw = kv_to_work(v, dt), gw = kv_to_work(g, dt);  // [B,Hkv,T,V], [B,Hkv,T,F]
  const at::Tensor dyw =
      dy.defined() ? heads_to_work(dy, d, dt) : at::zeros({d.B, d.Hkv, d.G, d.T, d.V}, opts);
  at::Tensor dqw = at::empty_like(qw), dkw = at::empty_like(kw);
  at::Tensor dvw = at::empty_like(vw), dgw = at::empty_like(gw);
  const Masks masks(std::max<int64_t>(1, std::min(C, d.T)));

  // Forward sweep keeping only the chunk-start states.
  at::Tensor S_start = at::empty({NC, d.B, d.Hkv, d.G, d.F, d.V}, opts);
  at::Tensor z_start = at::empty({NC, d.B, d.Hkv, d.G, d.F}, opts);
  {
    at::Tensor S = state_to_work(s0, d, {d.F, d.V}, dt, q.options());
    at::Tensor z = state_to_work(z0, d, {d.F}, dt, q.options());
    for (int64_t n = 0; n < NC; ++n) {
      const int64_t t0 = n * C, L = std::min(C, d.T - t0);
      S_start[n].copy_(S);
      z_start[n].copy_(z);
      Chunk c;
      chunk_carry(c, kw.narrow(3, t0, L), gw.narrow(2, t0, L));
      const at::Tensor vc = vw.narrow(2, t0, L).unsqueeze(2);
      S = S * per_state_row(c.eGl) + at::matmul(c.kd.transpose(-1, -2), vc);
      z = z * c.eGl.unsqueeze(2) + c.kd.sum(3);
    }
  }

  // Reverse sweep carrying dS = dL/dS_next [B,Hkv,G,F,V], dz = dL/dz_next [B,Hkv,G,F].
  at::Tensor dS = state_to_work(dS_T, d, {d.F, d.V}, dt, q.options());
  at::Tensor dz = state_to_work(dz_T, d, {d.F}, dt, q.options());
  for (int64_t n = NC - 1; n >= 0; --n) {
    const int64_t t0 = n * C, L = std::min(C, d.T - t0);
    const at::Tensor qc = qw.narrow(3, t0, L), kc = kw.narrow(3, t0, L);  // [B,Hkv,G,L,F]
    const at::Tensor vc = vw.narrow(2, t0, L).unsqueeze(2);               // [B,Hkv,1,L,V]
    const at::Tensor gc = gw.narrow(2, t0, L);                            // [B,Hkv,L,F]
    const at::Tensor dyc = dyw.narrow(3, t0, L);                          // [B,Hkv,G,L,V]
    const at::Tensor Sp = S_start[n], zp = z_start[n];                    // [..,G,F,V], [..,G,F]
    Chunk c;
    chunk_carry(c, kc, gc);
    chunk_scores(c, qc, kc, gc, masks);
    const at::Tensor eGl_g = c.eGl.unsqueeze(2);  // [B,Hkv,1,F]

    // y = num / den (or num).
    at::Tensor dn = dyc, dd;  // [..,G,L,V], [..,G,L]
    if (options.normalize) {
      const at::Tensor num = at::matmul(c.qg, Sp) + at::matmul(c.A, vc);
      const at::Tensor den =
          at::matmul(c.qg, zp.unsqueeze(-1)).squeeze(-1) + c.A.sum(-1) + options.eps;
      dn = dyc / den.unsqueeze(-1);
      dd = -(dn * num).sum(-1) / den;
    }
    // num = qg Sp + A v
    at::Tensor dqg = at::matmul(dn, Sp.transpose(-1, -2));          // [..,G,L,F]
    at::Tensor dSp = at::matmul(c.qg.transpose(-1, -2), dn);        // [..,G,F,V]
    at::Tensor dA = at::matmul(dn, vc.transpose(-1, -2));           // [..,G,L,L]
    at::Tensor dvc = at::matmul(c.A.transpose(-1, -2), dn).sum(2);  // [B,Hkv,L,V]
    // den = qg zp + rowsum(A) + eps
    at::Tensor dzp;
    if (options.normalize) {
      dqg = dqg + dd.unsqueeze(-1) * zp.unsqueeze(3);
      dzp = (dd.unsqueeze(-1) * c.qg).sum(3);  // [..,G,F]
      dA = dA + dd.unsqueeze(-1);
    } else {
      dzp = at::zeros_like(zp);
    }
    // S_next = eGl * Sp + kd^T v;  z_next = eGl * zp + sum_s kd
    dSp = dSp + per_state_row(c.eGl) * dS;
    dzp = dzp + eGl_g * dz;
    const at::Tensor Zl = (eGl_g * ((Sp * dS).sum(-1) + zp * dz)).sum(2);           // [B,Hkv,F]
    const at::Tensor dkd = at::matmul(vc, dS.transpose(-1, -2)) + dz.unsqueeze(3);  // [..,G,L,F]
    dvc = dvc + at::matmul(c.kd, dS).sum(2);
    // qg = q * eG;  kd = k * ekd
    at::Tensor dqc = dqg * c.eG.unsqueeze(2);
    at::Tensor dkc = dkd * c.ekd.unsqueeze(2);
    const at::Tensor X = (dqg * c.qg).sum(2);  // [B,Hkv,L,F]
    const at::Tensor Y = (dkd * c.kd).sum(2);  // [B,Hkv,L,F]
    // A[t,s] = sum_f q_t k_s D[t,s]
    const at::Tensor E = dA.unsqueeze(-1) * c.D.unsqueeze(2);  // [..,G,L,L,F]
    dqc = dqc + (E * kc.unsqueeze(3)).sum(4);
    const at::Tensor Eq = E * qc.unsqueeze(4);
    dkc = dkc + Eq.sum(3);
    // M[t, s] = sum_G dA q_t k_s D[t, s], strictly below the diagonal: [B,Hkv,L,L,F]
    const at::Tensor M = (Eq * kc.unsqueeze(3)).sum(2).masked_fill(masks.not_strict_for(L), 0);
    // R[t, j] = sum_{s<j} M[t, s];  Q[j] = sum_{t>=j} R[t, j]
    const at::Tensor R =
        at::cat({at::zeros({d.B, d.Hkv, L, 1, d.F}, opts), M.narrow(3, 0, L - 1).cumsum(3)}, 3);
    const at::Tensor Q = R.masked_fill(masks.above_for(L), 0).sum(2);  // [B,Hkv,L,F]
    const at::Tensor X_rev = X.flip(2).cumsum(2).flip(2);              // sum_{t>=j} X_t
    const at::Tensor Y_exc =
        at::cat({at::zeros({d.B, d.Hkv, 1, d.F}, opts), Y.narrow(2, 0, L - 1).cumsum(2)},
                2);  // sum_{t<j} Y_t
    const at::Tensor dgc = X_rev + Y_exc + Q + Zl.unsqueeze(2);

    dqw.narrow(3, t0, L).copy_(dqc);
    dkw.narrow(3, t0, L).copy_(dkc);
    dvw.narrow(2, t0, L).copy_(dvc);
    dgw.narrow(2, t0, L).copy_(dgc);
    dS = dSp;
    dz = dzp;
  }

  at::Tensor ds0, dz0;
  if (s0.defined()) ds0 = dS.reshape({d.B, d.H, d.F, d.V}).to(s0.scalar_type());
  if (z0.defined()) dz0 = dz.reshape({d.B, d.H, d.F}).to(z0.scalar_type());
  return {work_to_heads(dqw, d, q.scalar_type()),
          work_to_heads(dkw, d, k.scalar_type()),
          work_to_kv(dvw, v.scalar_type()),
          work_to_kv(dgw, g.scalar_type()),
          ds0,
          dz0};
}

at::Tensor gla_step(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                    const at::Tensor& g, at::Tensor& state, at::Tensor& normalizer,
                    const GlaOptions& options) {
  at::NoGradGuard no_grad;
  const int64_t B = q.size(0), H = q.size(1), F = q.size(2), Hkv = v.size(1), V = v.size(2);
  const int64_t G = H / Hkv;
  const auto dt = state.scalar_type();
  const at::Tensor q5 = q.to(dt).reshape({B, Hkv, G, F});
  const at::Tensor k5 = k.to(dt).reshape({B, Hkv, G, F});
  const at::Tensor v4 = v.to(dt).reshape({B, Hkv, 1, 1, V});
  const at::Tensor a = g.to(dt).exp().reshape({B, Hkv, 1, F});
  const at::Tensor S = state.reshape({B, Hkv, G, F, V}) * a.unsqueeze(-1) + k5.unsqueeze(-1) * v4;
  const at::Tensor z = normalizer.to(dt).reshape({B, Hkv, G, F}) * a + k5;
  at::Tensor y = (q5.unsqueeze(-1) * S).sum(-2);  // [B,Hkv,G,V]
  if (options.normalize) y = y / ((q5 * z).sum(-1, /*keepdim=*/true) + options.eps);
  state.copy_(S.view({B, H, F, V}));
  normalizer.copy_(z.view({B, H, F}));
  return y.reshape({B, H, V}).to(v.scalar_type());
}

}  // namespace lawcat::ops::cpu
