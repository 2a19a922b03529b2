// Plain-ATen oracles (see reference.h). Deliberately naive: one token at a time,
// GQA by an explicit repeat, the convolution by its definition. Every op is a
// differentiable ATen op, so autograd through these gives reference gradients.
#include "ops/reference.h"

#include <c10/util/Exception.h>

#include <vector>

namespace lawcat::ops::ref {

std::tuple<at::Tensor, at::Tensor, at::Tensor> gla_recurrent_ref(
    const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& g,
    const std::optional<at::Tensor>& s0, const std::optional<at::Tensor>& z0, bool normalize,
    double eps) {
  TORCH_CHECK(q.dim() == 4 && k.sizes() == q.sizes(), "gla_recurrent_ref: q ", q.sizes(), " and k ",
              k.sizes(), " must both be [B, T, H, F]");
  TORCH_CHECK(v.dim() == 4 && g.dim() == 4, "gla_recurrent_ref: v ", v.sizes(), " and g ",
              g.sizes(), " must be [B, T, Hkv, V] and [B, T, Hkv, F]");
  const int64_t B = q.size(0), T = q.size(1), H = q.size(2), F = q.size(3);
  const int64_t Hkv = v.size(2), V = v.size(3);
  TORCH_CHECK(Hkv > 0 && H % Hkv == 0, "gla_recurrent_ref: H = ", H,
              " not a multiple of Hkv = ", Hkv);
  TORCH_CHECK(g.size(0) == B && g.size(1) == T && g.size(2) == Hkv && g.size(3) == F,
              "gla_recurrent_ref: g ", g.sizes(), " expected [", B, ", ", T, ", ", Hkv, ", ", F,
              "]");
  const auto dt = q.scalar_type();  // everything is computed in q's dtype
  const int64_t group = H / Hkv;
  // GQA: query head h reads kv head h / group. [B, T, H, V], [B, T, H, F]
  const at::Tensor vr = v.to(dt).repeat_interleave(group, 2);
  const at::Tensor ar = g.to(dt).exp().repeat_interleave(group, 2);
  const at::Tensor qd = q.to(dt), kd = k.to(dt);

  at::Tensor S =
      s0.has_value() && s0->defined() ? s0->to(dt) : at::zeros({B, H, F, V}, q.options().dtype(dt));
  at::Tensor z =
      z0.has_value() && z0->defined() ? z0->to(dt) : at::zeros({B, H, F}, q.options().dtype(dt));
  // The recurrence, one token at a time; the readout is done for all t afterwards.
  const at::Tensor kv = kd.unsqueeze(-1) * vr.unsqueeze(-2);  // k_t v_t^T [B, T, H, F, V]
  std::vector<at::Tensor> Ss, zs;
  Ss.reserve(T);
  zs.reserve(T);
  for (int64_t t = 0; t < T; ++t) {
    const at::Tensor a_t = ar.select(1, t);       // [B, H, F]
    S = S * a_t.unsqueeze(-1) + kv.select(1, t);  // S_t [B, H, F, V]
    z = z * a_t + kd.select(1, t);                // z_t [B, H, F]
    Ss.push_back(S);
    zs.push_back(z);
  }
  at::Tensor y = at::zeros({B, 0, H, V}, q.options().dtype(dt));
  if (T > 0) {
    const at::Tensor S_all = at::stack(Ss, 1), z_all = at::stack(zs, 1);  // [B,T,H,F,V], [B,T,H,F]
    y = (qd.unsqueeze(-1) * S_all).sum(-2);                               // q_t^T S_t [B,T,H,V]
    if (normalize) y = y / ((qd * z_all).sum(-1, /*keepdim=*/true) + eps);
  }
  return {y, S, z};
}

at::Tensor causal_conv1d_ref(const at::Tensor& x, const at::Tensor& w,
                             const std::optional<at::Tensor>& cache) {
  TORCH_CHECK(x.dim() == 3, "causal_conv1d_ref: x ", x.sizes(), " must be [B, T, C]");
  TORCH_CHECK(w.dim() == 2 && w.size(0) == x.size(2) && w.size(1) >= 1, "causal_conv1d_ref: w ",
              w.sizes(), " must be [C = ", x.size(2), ", W >= 1]");
  const int64_t B = x.size(0), T = x.size(1), C = x.size(2), W = w.size(1);
  const auto dt = at::promote_types(x.scalar_type(), w.scalar_type());
  const at::Tensor xd = x.to(dt), wd = w.to(dt);
  // Inputs before t = 0, oldest first: [B, W-1, C].
  at::Tensor prefix = cache.has_value() && cache->defined()
                          ? cache->to(dt).transpose(1, 2)
                          : at::zeros({B, W - 1, C}, x.options().dtype(dt));
  TORCH_CHECK(prefix.size(0) == B && prefix.size(1) == W - 1 && prefix.size(2) == C,
              "causal_conv1d_ref: cache must be [", B, ", ", C, ", ", W - 1, "]");
  const at::Tensor xp = at::cat({prefix, xd}, 1);  // [B, W-1+T, C]
  // out[t] = sum_j w[:, j] * x[t - W + 1 + j]  ==  sum_j w[:, j] * xp[t + j]
  at::Tensor out = at::zeros({B, T, C}, x.options().dtype(dt));
  for (int64_t j = 0; j < W; ++j) out = out + xp.narrow(1, j, T) * wd.select(1, j);
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> lawcat_prologue_ref(const at::Tensor& q, const at::Tensor& k,
                                                                   const at::Tensor& a, const at::Tensor& conv_q,
                                                                   const at::Tensor& conv_k, const at::Tensor& wphi,
                                                                   const at::Tensor& w2, const at::Tensor& b2,
                                                                   double tau) {
  const int64_t B = q.size(0), T = q.size(1), H = q.size(2), D = q.size(3), Hkv = k.size(2);
  const at::Tensor qt = causal_conv1d_ref(q.reshape({B, T, H * D}), conv_q).view({B, T, H, D});
  const at::Tensor krep = k.reshape({B, T, Hkv, 1, D}).expand({B, T, Hkv, H / Hkv, D}).reshape({B, T, H * D});
  const at::Tensor kt = causal_conv1d_ref(krep, conv_k).view({B, T, H, D});
  auto phi = [&](const at::Tensor& u) {
    const at::Tensor s = at::einsum("bthd,hdf->bthf", {u, wphi.to(u.scalar_type())});
    return at::cat({at::softmax(s, -1), at::softmax(-s, -1)}, -1).clamp_min(1e-12);
  };
  const at::Tensor g = (at::log_sigmoid(at::linear(a, w2, b2)) / tau).view({B, T, Hkv, D});
  return {phi(qt), phi(kt), g};
}

at::Tensor lawcat_core_ref(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& a,
                           const at::Tensor& conv_q, const at::Tensor& conv_k, const at::Tensor& wphi,
                           const at::Tensor& w2, const at::Tensor& b2, bool normalize, double tau, double eps) {
  const auto [phiq, phik, g] = lawcat_prologue_ref(q, k, a, conv_q, conv_k, wphi, w2, b2, tau);
  return std::get<0>(gla_recurrent_ref(phiq, phik, v, g, {}, {}, normalize, eps));
}

}  // namespace lawcat::ops::ref
