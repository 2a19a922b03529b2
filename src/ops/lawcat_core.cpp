#include "ops/lawcat_core.h"

#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <cstdlib>
#include <string>

#include "ops/conv1d.h"
#include "ops/cuda_ops.h"
#include "ops/gla.h"
#include "ops/rope.h"
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
  go.chunk_size = o.chunk_size;
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

// ---- layer level ---------------------------------------------------------------------

namespace {

// Shapes read from the tensors: H, D from wphi [H, D, f]; Hkv from k [B, T, Hkv*D].
struct Dims {
  int64_t B, T, H, Hkv, D, F;
  int64_t group() const { return H / Hkv; }
};

Dims check_inputs(const char* op, const LawcatCoreInputs& in, const LawcatCoreWeights& w) {
  TORCH_CHECK(w.wphi.defined() && w.wphi.dim() == 3, op, ": wphi must be [H, D, f], got ",
              w.wphi.defined() ? w.wphi.sizes() : at::IntArrayRef{});
  const int64_t H = w.wphi.size(0), D = w.wphi.size(1);
  TORCH_CHECK(in.x.dim() == 3 && in.q.dim() == 3 && in.k.dim() == 3 && in.v.dim() == 3, op,
              ": x, q, k, v must be [B, T, C], got ", in.x.sizes(), ", ", in.q.sizes(), ", ", in.k.sizes(), ", ",
              in.v.sizes());
  const int64_t B = in.x.size(0), T = in.x.size(1);
  TORCH_CHECK(in.q.size(0) == B && in.q.size(1) == T && in.q.size(2) == H * D, op, ": q must be [B, T, H*D] = [", B,
              ", ", T, ", ", H * D, "], got ", in.q.sizes());
  TORCH_CHECK(in.k.size(0) == B && in.k.size(1) == T && in.k.size(2) % D == 0 && in.k.size(2) > 0, op,
              ": k must be [B, T, Hkv*D] with D = ", D, ", got ", in.k.sizes());
  TORCH_CHECK(in.v.sizes() == in.k.sizes(), op, ": v ", in.v.sizes(), " must match k ", in.k.sizes());
  const int64_t Hkv = in.k.size(2) / D;
  TORCH_CHECK(H % Hkv == 0, op, ": H = ", H, " query heads is not a multiple of Hkv = ", Hkv);
  TORCH_CHECK(w.conv_q.defined() == w.conv_k.defined(), op, ": give both conv_q and conv_k or neither");
  TORCH_CHECK(!w.w1.defined() || (w.w2.defined() && w.w1.dim() == 2 && w.w1.size(1) == in.x.size(2)), op,
              ": the gate needs w1 [R, hidden = ", in.x.size(2), "] and w2, got w1 ",
              w.w1.defined() ? w.w1.sizes() : at::IntArrayRef{});
  TORCH_CHECK(in.cos.defined() == in.sin.defined(), op, ": give both RoPE tables (cos, sin) or neither");
  TORCH_CHECK(!in.valid.defined() || (in.valid.dim() == 2 && in.valid.size(0) == B && in.valid.size(1) == T), op,
              ": valid must be [B, T] = [", B, ", ", T, "], got ", in.valid.defined() ? in.valid.sizes() : at::IntArrayRef{});
  return {B, T, H, Hkv, D, 2 * w.wphi.size(2)};
}

// A decoding step: one token continuing a state, without autograd.
bool is_step(const LawcatCoreInputs& in, const LawcatCoreState* st) {
  return st && in.x.size(1) == 1 && !at::GradMode::is_enabled();
}

// Causal conv of x [B, T, C] continuing `cache` [B, C, W-1] when given (then updated).
at::Tensor conv_stream(const at::Tensor& x, const at::Tensor& w, at::Tensor* cache) {
  if (!cache) return causal_conv1d(x, w);
  const int64_t width = w.size(1);
  std::optional<at::Tensor> init;
  if (cache->defined()) init = *cache;
  at::Tensor out = causal_conv1d(x, w, init);
  *cache = causal_conv1d_cache(x.detach(), width,
                               init ? std::optional<at::Tensor>(init->detach()) : std::optional<at::Tensor>());
  return out;
}

// One step of the conv: rolls the cache in place (one kernel instead of a conv plus a new cache).
at::Tensor conv_step(const at::Tensor& u, const at::Tensor& w, at::Tensor& cache) {
  if (!cache.defined()) cache = at::zeros({u.size(0), u.size(2), w.size(1) - 1}, u.options());
  return causal_conv1d_step(u.select(1, 0), w, cache).unsqueeze(1);
}

// Whether the layer's settings are the fused CUDA core's: conv on q and k, the gate, φ of
// dimension D, no RoPE, no conv on v (shapes, widths, ranks and dtypes: the kernels' rule).
bool fused_settings(const LawcatCoreInputs& in, const LawcatCoreWeights& w, const Dims& d) {
  return w.conv_q.defined() && w.w1.defined() && d.F == d.D && !in.cos.defined() && !w.conv_v.defined() &&
         !in.valid.defined();  // padded batches: the separate ops (the kernels take no mask)
}

bool half_precision(const at::Tensor& t) {
  return t.scalar_type() == at::kBFloat16 || t.scalar_type() == at::kHalf;
}

// a = W1 x [B, T, R], the gate's low-rank activations in x's dtype (the fused core's input).
at::Tensor gate_activations(const at::Tensor& x, const at::Tensor& w1) {
  return at::linear(x, w1.to(x.scalar_type()));
}

// The same in fp32 (the separate ops' gate and the fused decode step's input).
at::Tensor gate_activations_fp32(const at::Tensor& x, const at::Tensor& w1) {
  return at::linear(x.to(at::kFloat), w1.to(at::kFloat));
}

#ifdef LAWCAT_HAVE_CUDA
// The conv cache after a sequence, from its last W-1 inputs only: x [B, T, C] -> [B, C, W-1].
at::Tensor tail_cache(const at::Tensor& x, int64_t width) {
  const int64_t T = x.size(1), m = std::min<int64_t>(T, width - 1);
  return causal_conv1d_cache(x.narrow(1, T - m, m), width);
}

// Whether an environment switch such as LAWCAT_NO_FUSED_PREFILL=1 is set (anything but empty or 0).
bool env_flag(const char* name) {
  const char* e = std::getenv(name);
  return e && *e && std::string(e) != "0";
}

// LAWCAT_NO_FUSED_PREFILL=1 turns the fused prefill off (A/B timing, debugging).
bool fused_prefill_disabled() {
  static const bool off = env_flag("LAWCAT_NO_FUSED_PREFILL");
  return off;
}

// LAWCAT_NO_FUSED_STEP=1 turns the fused decode step off (A/B timing, debugging).
bool fused_step_disabled() {
  static const bool off = env_flag("LAWCAT_NO_FUSED_STEP");
  return off;
}

#endif

// Prefill without autograd on CUDA through the fused LAWCAT forward kernel (conv + φ + gate +
// normalized GLA; or the fused prologue, then the GLA kernel, for shapes it does not take);
// undefined when the settings or inputs fit neither (then the separate ops run). y [B, T, H, D].
at::Tensor fused_prefill(const LawcatCoreInputs& in, const LawcatCoreWeights& w, const LawcatCoreOptions& o,
                         const Dims& d, LawcatCoreState* st) {
#ifdef LAWCAT_HAVE_CUDA
  const bool fits = in.x.is_cuda() && !at::GradMode::is_enabled() && !fused_prefill_disabled() &&
                    fused_settings(in, w, d) && (st == nullptr || st->seen == 0) && d.T > 1 && half_precision(in.q) &&
                    cuda::lawcat_prologue_supported(d.D, w.conv_q.size(1), w.w1.size(0));
  if (!fits) return at::Tensor();
  const int64_t W = w.conv_q.size(1);
  const at::Tensor a = gate_activations(in.x, w.w1);
  const at::Tensor q4 = in.q.view({d.B, d.T, d.H, d.D}), k4 = in.k.view({d.B, d.T, d.Hkv, d.D}),
                   v4 = in.v.view({d.B, d.T, d.Hkv, d.D});
  GlaResult r;
  if (cuda::lawcat_core_fwd_supported(q4, W, a.size(-1))) {
    // One fused kernel per pass: conv + φ + gate + normalized GLA, no intermediates in memory.
    std::tie(r.y, r.state, r.normalizer) =
        cuda::lawcat_core_fwd(q4, k4, v4, a, w.conv_q, w.conv_k, w.wphi, w.w2, w.b2, o.tau, o.eps, o.normalize);
  } else {
    auto [phiq, phik, g] = cuda::lawcat_prologue_fwd(q4, k4, a, w.conv_q, w.conv_k, w.wphi, w.w2, w.b2, o.tau);
    GlaOptions gopt;
    gopt.chunk_size = o.chunk_size;
    gopt.normalize = o.normalize;
    gopt.eps = o.eps;
    r = chunk_gla(phiq, phik, v4, g, std::nullopt, std::nullopt, gopt);
  }
  if (st) {
    st->S = r.state;
    st->z = r.normalizer;
    st->conv_q_cache = tail_cache(in.q, W);
    const int64_t m = std::min<int64_t>(d.T, W - 1);
    const at::Tensor k_tail =
        in.k.narrow(1, d.T - m, m).view({d.B, m, d.Hkv, 1, d.D}).expand({d.B, m, d.Hkv, d.group(), d.D});
    st->conv_k_cache = tail_cache(k_tail.reshape({d.B, m, d.H * d.D}), W);
    st->seen += d.T;
  }
  return r.y;  // [B, T, H, D]
#else
  (void)in, (void)w, (void)o, (void)d, (void)st;
  return at::Tensor();
#endif
}

// One decoding step on CUDA through the fused step kernel (conv steps + φ + gate + GLA step in
// one launch instead of ~25); undefined when the settings or inputs do not fit it (then the
// separate ops run). LAWCAT_NO_FUSED_STEP=1 turns it off (A/B timing, debugging). y [B, 1, H, D].
at::Tensor fused_step(const LawcatCoreInputs& in, const LawcatCoreWeights& w, const LawcatCoreOptions& o,
                      const Dims& d, LawcatCoreState& st) {
#ifdef LAWCAT_HAVE_CUDA
  if (fused_step_disabled() || !in.x.is_cuda() || !fused_settings(in, w, d) || !half_precision(in.q) ||
      !cuda::lawcat_step_fused_supported(in.q, d.D, w.conv_q.size(1), w.w1.size(0)))
    return at::Tensor();
  const at::Tensor a = gate_activations_fp32(in.x.select(1, 0), w.w1);  // as the separate ops compute the gate
  at::Tensor y = cuda::lawcat_step_fused(in.q.select(1, 0), in.k.select(1, 0), in.v.select(1, 0), a, w.conv_q, w.conv_k,
                                         st.conv_q_cache, st.conv_k_cache, w.wphi, w.w2, w.b2, st.S, st.z, o.tau,
                                         o.eps, o.normalize);
  st.seen += d.T;
  return y.unsqueeze(1);  // [B, 1, H, D]
#else
  (void)in, (void)w, (void)o, (void)d, (void)st;
  return at::Tensor();
#endif
}

LawcatFeatures features(const LawcatCoreInputs& in, const LawcatCoreWeights& w, const LawcatCoreOptions& o,
                        const Dims& d, LawcatCoreState* st) {
  const int64_t B = d.B, T = d.T, H = d.H, Hkv = d.Hkv, D = d.D;
  const bool step = is_step(in, st);
  // Left padding: pads' q, k, v are zeros (the conv sees zeros before a row's first real token).
  at::Tensor pad;  // [B, T, 1] bool, true at pads
  at::Tensor q_in = in.q, k_in = in.k, v_in = in.v;
  if (in.valid.defined()) {
    pad = in.valid.to(in.q.device(), at::kBool).logical_not().unsqueeze(-1);
    q_in = q_in.masked_fill(pad, 0);
    k_in = k_in.masked_fill(pad, 0);
    v_in = v_in.masked_fill(pad, 0);
  }
  // GQA: every query head has its own k filter, so k is repeated to H heads before the conv
  // (without a state, causal_conv1d's GQA option: on CUDA the kernel indexes the kv head).
  auto k_rep = [&] { return k_in.view({B, T, Hkv, 1, D}).expand({B, T, Hkv, d.group(), D}).reshape({B, T, H * D}); };
  at::Tensor q_conv = q_in, k_conv, v_lin = v_in;
  if (w.conv_q.defined()) {
    if (step) {
      q_conv = conv_step(q_in, w.conv_q, st->conv_q_cache);
      k_conv = conv_step(k_rep(), w.conv_k, st->conv_k_cache);
      if (w.conv_v.defined()) v_lin = conv_step(v_in, w.conv_v, st->conv_v_cache);
    } else {
      q_conv = conv_stream(q_in, w.conv_q, st ? &st->conv_q_cache : nullptr);
      k_conv = st ? conv_stream(k_rep(), w.conv_k, &st->conv_k_cache)
                  : causal_conv1d(k_in.contiguous(), w.conv_k, d.group(), D);
      if (w.conv_v.defined()) v_lin = conv_stream(v_in, w.conv_v, st ? &st->conv_v_cache : nullptr);
    }
  } else {
    k_conv = k_rep();
  }
  at::Tensor q4 = q_conv.view({B, T, H, D});
  at::Tensor k4 = k_conv.view({B, T, H, D});
  LawcatFeatures f;
  f.v = v_lin.view({B, T, Hkv, D});
  if (in.cos.defined()) {
    q4 = apply_rope(q4.transpose(1, 2), in.cos, in.sin).transpose(1, 2);
    k4 = apply_rope(k4.transpose(1, 2), in.cos, in.sin).transpose(1, 2);
  }
  // φ in fp32, handed to the GLA op in the values' dtype (bf16 on GPU: tensor cores).
  f.phiq = hedgehog_feature_map(q4, w.wphi).to(f.v.scalar_type());
  f.phik = hedgehog_feature_map(k4, w.wphi).to(f.v.scalar_type());
  // W1 then W2 (+ b), in fp32.
  f.g = w.w1.defined() ? low_rank_log_gate(gate_activations_fp32(in.x, w.w1), w.w2, w.b2, o.tau, Hkv)
                       : at::zeros({B, T, Hkv, d.F}, in.x.options().dtype(at::kFloat));
  if (pad.defined()) {  // pads: no decay (log α = 0) and nothing accumulated (φ(k~) = 0, S and z alike)
    const at::Tensor pad4 = pad.unsqueeze(-1);  // [B, T, 1, 1]
    f.phik = f.phik.masked_fill(pad4, 0);
    f.g = f.g.masked_fill(pad4, 0);
    f.v = f.v.masked_fill(pad4, 0);
  }
  return f;
}

GlaOptions gla_options(const LawcatCoreOptions& o) {
  GlaOptions g;
  g.chunk_size = o.chunk_size;
  g.normalize = o.normalize;
  g.eps = o.eps;
  return g;
}

}  // namespace

LawcatFeatures lawcat_features(const LawcatCoreInputs& in, const LawcatCoreWeights& w, const LawcatCoreOptions& o,
                               LawcatCoreState* st) {
  return features(in, w, o, check_inputs("lawcat_features", in, w), st);
}

at::Tensor lawcat_core(const LawcatCoreInputs& in, const LawcatCoreWeights& w, const LawcatCoreOptions& o,
                       LawcatCoreState* st) {
  const Dims d = check_inputs("lawcat_core", in, w);
  static bool fused_ok = true;  // a kernel error turns the fused prefill off for the process (logged)
  if (fused_ok) {
    try {
      if (at::Tensor y = fused_prefill(in, w, o, d, st); y.defined()) return y;
    } catch (const c10::Error& e) {
      fused_ok = false;
      log::warn("LAWCAT fused prefill failed, using the ATen path from now on: ", e.what_without_backtrace());
      if (st) *st = LawcatCoreState();
    }
  }

  // Training on CUDA: the whole core as one fused op (forward and backward kernels).
  if (!st && at::GradMode::is_enabled() && in.x.is_cuda() && fused_settings(in, w, d) && half_precision(in.x)) {
    const at::Tensor q4 = in.q.view({d.B, d.T, d.H, d.D});
    if (lawcat_core_fused_supported(q4, w.conv_q.size(1), w.w1.size(0))) {
      LawcatCoreOptions co = o;
      return lawcat_core(q4, in.k.view({d.B, d.T, d.Hkv, d.D}), in.v.view({d.B, d.T, d.Hkv, d.D}),
                         gate_activations(in.x, w.w1), w.conv_q, w.conv_k, w.wphi, w.w2, w.b2, co);
    }
  }

  // The separate ops: conv, φ, gate, chunk_gla (any device, dtype and settings).
  const LawcatFeatures f = features(in, w, o, d, st);
  at::Tensor y;  // [B, T, H, D]
  if (st) {
    if (!st->S.defined()) {
      st->S = at::zeros({d.B, d.H, d.F, d.D}, in.x.options().dtype(at::kFloat));
      st->z = at::zeros({d.B, d.H, d.F}, in.x.options().dtype(at::kFloat));
    }
    GlaResult r = chunk_gla(f.phiq, f.phik, f.v, f.g, st->S, st->z, gla_options(o));
    y = r.y;
    st->S = r.state.detach();
    st->z = r.normalizer.detach();
    st->seen += d.T;
  } else {
    y = chunk_gla(f.phiq, f.phik, f.v, f.g, std::nullopt, std::nullopt, gla_options(o)).y;
  }
  return y;
}

at::Tensor lawcat_core_step(const LawcatCoreInputs& in, const LawcatCoreWeights& w, const LawcatCoreOptions& o,
                            LawcatCoreState& st) {
  const Dims d = check_inputs("lawcat_core_step", in, w);
  TORCH_CHECK(is_step(in, &st), "lawcat_core_step: one token (T = 1) without autograd expected, got T = ", d.T,
              at::GradMode::is_enabled() ? " with autograd on" : "");
  static bool fused_step_ok = true;  // a kernel error turns the fused step off for the process (logged)
  if (fused_step_ok) {
    try {
      if (at::Tensor y = fused_step(in, w, o, d, st); y.defined()) return y;
    } catch (const c10::Error& e) {
      fused_step_ok = false;
      log::warn("LAWCAT fused decode step failed, using the separate ops from now on: ", e.what_without_backtrace());
    }
  }
  const LawcatFeatures f = features(in, w, o, d, &st);
  if (!st.S.defined()) {
    st.S = at::zeros({d.B, d.H, d.F, d.D}, in.x.options().dtype(at::kFloat));
    st.z = at::zeros({d.B, d.H, d.F}, in.x.options().dtype(at::kFloat));
  }
  at::Tensor y =
      gla_step(f.phiq.select(1, 0), f.phik.select(1, 0), f.v.select(1, 0), f.g.select(1, 0), st.S, st.z, gla_options(o))
          .unsqueeze(1);
  st.seen += d.T;
  return y;  // [B, 1, H, D]
}

}  // namespace lawcat::ops
