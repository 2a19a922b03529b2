#include "ops/lawcat_core.h"

#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/custom_function.h>

#include "ops/conv1d.h"
#include "ops/cuda_ops.h"
#include "ops/gla.h"
#include "util/log.h"

namespace lawcat::ops {

at::Tensor hedgehog_feature_map(const at::Tensor& u, const at::Tensor& wphi) {
  const at::Tensor proj = at::einsum("bthd,hdf->bthf", {u.to(at::kFloat), wphi.to(at::kFloat)});
  return at::clamp_min(at::cat({at::softmax(proj, -1), at::softmax(-proj, -1)}, -1), 1e-12);
}

at::Tensor low_rank_log_gate(const at::Tensor& a, const at::Tensor& w2, const at::Tensor& b2, double tau,
                             int64_t num_kv_heads) {
  const at::Tensor logits = at::linear(a.to(at::kFloat), w2.to(at::kFloat), b2.defined() ? b2.to(at::kFloat) : b2);
  return (at::log_sigmoid(logits) / tau).view({a.size(0), a.size(1), num_kv_heads, -1});
}

at::Tensor lawcat_core_unfused(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& a,
                               const at::Tensor& conv_q, const at::Tensor& conv_k, const at::Tensor& wphi,
                               const at::Tensor& w2, const at::Tensor& b2, const LawcatCoreOptions& o) {
  const int64_t B = q.size(0), T = q.size(1), H = q.size(2), D = q.size(3), Hkv = k.size(2);
  const at::Tensor krep = k.reshape({B, T, Hkv, 1, D}).expand({B, T, Hkv, H / Hkv, D}).reshape({B, T, H * D});
  const at::Tensor qc = causal_conv1d(q.reshape({B, T, H * D}), conv_q).view({B, T, H, D});
  const at::Tensor kc = causal_conv1d(krep, conv_k).view({B, T, H, D});
  const at::Tensor phiq = hedgehog_feature_map(qc, wphi).to(v.scalar_type());
  const at::Tensor phik = hedgehog_feature_map(kc, wphi).to(v.scalar_type());
  GlaOptions go;
  go.normalize = o.normalize;
  go.eps = o.eps;
  return chunk_gla(phiq, phik, v, low_rank_log_gate(a, w2, b2, o.tau, Hkv), std::nullopt, std::nullopt, go).y;
}

#ifdef LAWCAT_HAVE_CUDA
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct LawcatCoreFunction : public torch::autograd::Function<LawcatCoreFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            const at::Tensor& a, const at::Tensor& conv_q, const at::Tensor& conv_k,
                            const at::Tensor& wphi, const at::Tensor& w2, const at::Tensor& b2, double tau, double eps,
                            bool normalize) {
    cuda::LawcatCoreSaved s;
    at::Tensor y = std::get<0>(cuda::lawcat_core_fwd(q, k, v, a, conv_q, conv_k, wphi, w2, b2, tau, eps, normalize, &s));
    ctx->save_for_backward(
        {q, k, v, a, conv_q, conv_k, wphi, w2, b2, y, s.state_chunks, s.z_chunks, s.den, s.qprime, s.kprime});
    ctx->saved_data["tau"] = tau;
    ctx->saved_data["eps"] = eps;
    ctx->saved_data["normalize"] = normalize;
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto s = ctx->get_saved_variables();
    const at::Tensor &q = s[0], &k = s[1], &v = s[2], &a = s[3], &cq = s[4], &ck = s[5], &wphi = s[6], &w2 = s[7],
                     &b2 = s[8], &y = s[9];
    LawcatCoreOptions o;
    o.tau = ctx->saved_data["tau"].toDouble();
    o.eps = ctx->saved_data["eps"].toDouble();
    o.normalize = ctx->saved_data["normalize"].toBool();
    const at::Tensor dy = grads[0].defined() ? grads[0] : at::zeros_like(y);
    cuda::LawcatCoreGrads g = cuda::lawcat_core_bwd(q, k, v, a, cq, ck, wphi, w2, b2, o.tau, o.eps, o.normalize, y, dy,
                                                    {s[10], s[11], s[12], s[13], s[14]});
    if (g.extreme_chunks.item<int>() > 0) return unfused_grads(q, k, v, a, cq, ck, wphi, w2, b2, o, dy);
    // The gate logits l = a W2^T + b: da = dl W2, dW2 = dl^T a (db comes from the kernel).
    const int64_t B = q.size(0), T = q.size(1), R = a.size(2), G = w2.size(0);
    const at::Tensor w2f = w2.to(at::kFloat), af = a.reshape({B * T, R}).to(at::kFloat);
    const at::Tensor dl = g.dlogit.view({B * T, G});
    variable_list out(12);
    out[0] = g.dq;  // (already in q's dtype)
    out[1] = g.dk.to(k.scalar_type());
    out[2] = g.dv.to(v.scalar_type());
    out[3] = at::mm(dl, w2f).view({B, T, R}).to(a.scalar_type());
    out[4] = g.dconv_q.to(cq.scalar_type());
    out[5] = g.dconv_k.to(ck.scalar_type());
    out[6] = g.dwphi.to(wphi.scalar_type());
    out[7] = at::mm(dl.t(), af).to(w2.scalar_type());
    if (b2.defined()) out[8] = g.db.view(b2.sizes()).to(b2.scalar_type());
    return out;
  }

  // Gates beyond the single-reference range (never seen in training): the gradients of the
  // unfused ops, by autograd through a recomputed forward.
  static variable_list unfused_grads(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                     const at::Tensor& a, const at::Tensor& cq, const at::Tensor& ck,
                                     const at::Tensor& wphi, const at::Tensor& w2, const at::Tensor& b2,
                                     const LawcatCoreOptions& o, const at::Tensor& dy) {
    static bool logged = false;
    if (!logged) {
      logged = true;
      log::warn("lawcat_core: gates decay past the fused backward's range in some chunk; using the unfused ops");
    }
    at::AutoGradMode grad_on(true);
    std::vector<at::Tensor> leaves;
    for (const at::Tensor* t : {&q, &k, &v, &a, &cq, &ck, &wphi, &w2, &b2})
      leaves.push_back(t->defined() ? t->detach().requires_grad_(true) : at::Tensor());
    const at::Tensor y = lawcat_core_unfused(leaves[0], leaves[1], leaves[2], leaves[3], leaves[4], leaves[5],
                                             leaves[6], leaves[7], leaves[8], o);
    std::vector<at::Tensor> inputs;
    for (const auto& l : leaves)
      if (l.defined()) inputs.push_back(l);
    const variable_list d = torch::autograd::grad({y}, inputs, {dy}, false, false, true);
    variable_list out(12);
    size_t j = 0;
    for (size_t i = 0; i < leaves.size(); ++i)
      if (leaves[i].defined()) out[i] = d[j++];
    return out;
  }
};

}  // namespace
#endif

bool lawcat_core_fused_supported(const at::Tensor& q, int64_t conv_width, int64_t gate_rank) {
#ifdef LAWCAT_HAVE_CUDA
  return q.is_cuda() && cuda::lawcat_core_bwd_supported(q, conv_width, gate_rank);
#else
  (void)q, (void)conv_width, (void)gate_rank;
  return false;
#endif
}

at::Tensor lawcat_core(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& a,
                       const at::Tensor& conv_q, const at::Tensor& conv_k, const at::Tensor& wphi, const at::Tensor& w2,
                       const at::Tensor& b2, const LawcatCoreOptions& o) {
#ifdef LAWCAT_HAVE_CUDA
  if (lawcat_core_fused_supported(q, conv_q.size(1), a.size(-1)))
    return LawcatCoreFunction::apply(q, k, v, a, conv_q, conv_k, wphi, w2, b2, o.tau, o.eps, o.normalize);
#endif
  return lawcat_core_unfused(q, k, v, a, conv_q, conv_k, wphi, w2, b2, o);
}

}  // namespace lawcat::ops
