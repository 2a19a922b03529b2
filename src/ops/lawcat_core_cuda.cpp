// CUDA bindings of the LAWCAT kernels (csrc_kernels/lawcat): the fused prologue (conv + φ +
// gate, forward only) and the fused core forward / backward (conv + φ + gate + normalized
// GLA). Shape checks naming the tensors, the support rule asked of csrc_kernels/api.h,
// dtype conversion, the GLA segment plan and workspace (ops/cuda_binding.h), launch.
#ifdef LAWCAT_HAVE_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include <algorithm>
#include <vector>

#include "api.h"
#include "ops/cuda_binding.h"
#include "ops/cuda_ops.h"

namespace lawcat::ops::cuda {
using namespace binding;

namespace {
// A weight as the kernels read it: fp32, contiguous (undefined stays undefined).
at::Tensor fp32_contiguous(const at::Tensor& t) { return t.defined() ? t.to(at::kFloat).contiguous() : t; }
}  // namespace

std::tuple<at::Tensor, at::Tensor, at::Tensor> lawcat_prologue_fwd(const at::Tensor& q, const at::Tensor& k,
                                                                   const at::Tensor& a, const at::Tensor& conv_q,
                                                                   const at::Tensor& conv_k, const at::Tensor& wphi,
                                                                   const at::Tensor& w2, const at::Tensor& b2,
                                                                   double tau) {
  const char* op = "lawcat_prologue_fwd";
  const c10::cuda::CUDAGuard guard(q.device());
  TORCH_CHECK(q.is_cuda() && q.dim() == 4 && k.dim() == 4 && a.dim() == 3, op,
              ": q [B, T, H, D], k [B, T, Hkv, D], a [B, T, R] CUDA tensors expected, got ", q.sizes(), ", ",
              k.sizes(), ", ", a.sizes());
  const int64_t B = q.size(0), T = q.size(1), H = q.size(2), D = q.size(3), Hkv = k.size(2), R = a.size(2);
  TORCH_CHECK(k.size(0) == B && k.size(1) == T && k.size(3) == D && Hkv >= 1 && H % Hkv == 0, op, ": k ", k.sizes(),
              " does not fit q ", q.sizes());
  TORCH_CHECK(a.size(0) == B && a.size(1) == T, op, ": a must be [B, T, R], got ", a.sizes());
  TORCH_CHECK(conv_q.dim() == 2 && conv_q.size(0) == H * D && conv_k.sizes() == conv_q.sizes(), op,
              ": conv_q / conv_k must be [H*D, W], got ", conv_q.sizes(), ", ", conv_k.sizes());
  TORCH_CHECK(lawcat_prologue_supported(D, conv_q.size(1), R), op, ": unsupported head dim ", D, " / conv width ",
              conv_q.size(1), " / gate rank ", R, " (the kernels take D 64 or 128, W 1..", k::kLawcatMaxWidth,
              ", R a multiple of 16)");
  TORCH_CHECK(wphi.sizes() == at::IntArrayRef({H, D, D / 2}), op, ": wphi must be [H, D, D/2], got ", wphi.sizes());
  TORCH_CHECK(w2.sizes() == at::IntArrayRef({Hkv * D, R}), op, ": w2 must be [Hkv*D, R], got ", w2.sizes());
  TORCH_CHECK(!b2.defined() || b2.numel() == Hkv * D, op, ": b2 must have Hkv*D elements");
  const auto dt = kernel_dtype(q.scalar_type());
  const at::Tensor qc = q.to(dt).contiguous(), kc = k.to(dt).contiguous(), ac = a.to(dt).contiguous();
  const at::Tensor cq = fp32_contiguous(conv_q), ck = fp32_contiguous(conv_k), wp = fp32_contiguous(wphi),
                   w2f = fp32_contiguous(w2), b2f = fp32_contiguous(b2);
  at::Tensor phi_q = at::empty({B, T, H, D}, qc.options()), phi_k = at::empty({B, T, H, D}, qc.options());
  at::Tensor g = at::empty({B, T, Hkv, D}, qc.options().dtype(at::kFloat));
  k::PrologueParams p;
  p.dtype = to_kdtype(dt);
  p.batch = static_cast<int>(B);
  p.seqlen = static_cast<int>(T);
  p.H = static_cast<int>(H);
  p.Hkv = static_cast<int>(Hkv);
  p.D = static_cast<int>(D);
  p.width = static_cast<int>(conv_q.size(1));
  p.rank = static_cast<int>(R);
  p.tau = static_cast<float>(tau);
  p.q = qc.data_ptr();
  p.k = kc.data_ptr();
  p.a = ac.data_ptr();
  p.conv_q = cq.data_ptr<float>();
  p.conv_k = ck.data_ptr<float>();
  p.wphi = wp.data_ptr<float>();
  p.w2 = w2f.data_ptr<float>();
  p.b2 = b2f.defined() ? b2f.data_ptr<float>() : nullptr;
  p.phi_q = phi_q.data_ptr();
  p.phi_k = phi_k.data_ptr();
  p.g = g.data_ptr<float>();
  check_launch(k::launch_lawcat_prologue_fwd(p, at::cuda::getCurrentCUDAStream()), op);
  return {phi_q, phi_k, g};
}

bool lawcat_prologue_supported(int64_t head_dim, int64_t width, int64_t rank) {
  return k::lawcat_prologue_supported(static_cast<int>(head_dim), static_cast<int>(width), static_cast<int>(rank));
}

bool lawcat_core_fwd_supported(const at::Tensor& q, int64_t width, int64_t rank) {
  return q.is_cuda() && q.dim() == 4 && k::lawcat_fwd_supported(to_kdtype(q.scalar_type()), static_cast<int>(q.size(3)),
                                                               static_cast<int>(width), static_cast<int>(rank)) &&
         (q.scalar_type() == at::kBFloat16 || q.scalar_type() == at::kHalf);
}

namespace {
// The fused core's inputs, plan and workspace for one call (forward or backward).
struct FusedCore {
  Inputs in;
  Plan pl;
  at::Tensor ac, cq, ck, wp, w2f, b2f, seg_S, seg_z, seg_gamma, gate_cumsum;
  k::LawcatFwdParams p;
};

FusedCore prepare_fused(const char* op, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                        const at::Tensor& a, const at::Tensor& conv_q, const at::Tensor& conv_k, const at::Tensor& wphi,
                        const at::Tensor& w2, const at::Tensor& b2, double tau, double eps, bool normalize,
                        int64_t per_sm) {
  TORCH_CHECK(q.is_cuda() && q.dim() == 4 && k.dim() == 4 && v.dim() == 4 && a.dim() == 3, op,
              ": q [B, T, H, D], k, v [B, T, Hkv, D], a [B, T, R] CUDA tensors expected, got ", q.sizes(), ", ",
              k.sizes(), ", ", v.sizes(), ", ", a.sizes());
  const int64_t B = q.size(0), T = q.size(1), H = q.size(2), D = q.size(3), Hkv = k.size(2), R = a.size(2);
  const int64_t W = conv_q.dim() == 2 ? conv_q.size(1) : -1;
  TORCH_CHECK(lawcat_core_fwd_supported(q, W, R), op, ": unsupported configuration (dtype ", q.scalar_type(), ", D ", D,
              ", conv width ", W, ", gate rank ", R, "); use the unfused ops");
  TORCH_CHECK(k.sizes() == v.sizes() && k.size(0) == B && k.size(1) == T && k.size(3) == D && H % Hkv == 0, op, ": k ",
              k.sizes(), " / v ", v.sizes(), " do not fit q ", q.sizes());
  TORCH_CHECK(a.size(0) == B && a.size(1) == T, op, ": a must be [B, T, R], got ", a.sizes());
  TORCH_CHECK(k.scalar_type() == q.scalar_type() && v.scalar_type() == q.scalar_type() &&
                  a.scalar_type() == q.scalar_type(),
              op, ": q, k, v, a must share one dtype");
  TORCH_CHECK(conv_q.size(0) == H * D && conv_k.sizes() == conv_q.sizes(), op, ": conv_q / conv_k must be [H*D, W], got ",
              conv_q.sizes(), ", ", conv_k.sizes());
  TORCH_CHECK(wphi.sizes() == at::IntArrayRef({H, D, D / 2}), op, ": wphi must be [H, D, D/2], got ", wphi.sizes());
  TORCH_CHECK(w2.sizes() == at::IntArrayRef({Hkv * D, R}), op, ": w2 must be [Hkv*D, R], got ", w2.sizes());
  TORCH_CHECK(!b2.defined() || b2.numel() == Hkv * D, op, ": b2 must have Hkv*D elements");
  FusedCore fc;
  // Rows may be strided (e.g. views of one fused projection); the last dim must be contiguous.
  Inputs& in = fc.in;
  in.B = B, in.T = T, in.H = H, in.Hkv = Hkv, in.F = D, in.V = D, in.D = D, in.dt = q.scalar_type();
  in.q = kernel_ready(q);
  in.k = kernel_ready(k);
  in.v = kernel_ready(v);
  fc.ac = kernel_ready(a);
  fc.cq = fp32_contiguous(conv_q), fc.ck = fp32_contiguous(conv_k), fc.wp = fp32_contiguous(wphi);
  fc.w2f = fp32_contiguous(w2), fc.b2f = fp32_contiguous(b2);
  fc.pl = make_plan(in, at::Tensor(), per_sm);
  const auto f32o = q.options().dtype(at::kFloat);
  fc.seg_S = at::empty({std::max<int64_t>(fc.pl.num_segs, 1), H, D, D}, f32o);
  fc.seg_z = at::empty({std::max<int64_t>(fc.pl.num_segs, 1), H, D}, f32o);
  fc.seg_gamma = at::empty_like(fc.seg_z);
  fc.gate_cumsum = at::empty({B * T, Hkv, D}, f32o);
  GlaOptions o;
  o.eps = eps;
  o.normalize = normalize;
  k::LawcatFwdParams& p = fc.p;
  p.gla = base_params(in, fc.pl, o);
  p.gla.seg_S = fc.seg_S.data_ptr<float>();
  p.gla.seg_z = fc.seg_z.data_ptr<float>();
  p.gla.seg_gamma = fc.seg_gamma.data_ptr<float>();
  p.a = fc.ac.data_ptr();
  p.a_batch_stride = fc.ac.stride(0);
  p.a_row_stride = fc.ac.stride(1);
  p.width = static_cast<int>(W);
  p.rank = static_cast<int>(R);
  p.tau = static_cast<float>(tau);
  p.conv_q = fc.cq.data_ptr<float>();
  p.conv_k = fc.ck.data_ptr<float>();
  p.wphi = fc.wp.data_ptr<float>();
  p.w2 = fc.w2f.data_ptr<float>();
  p.b2 = fc.b2f.defined() ? fc.b2f.data_ptr<float>() : nullptr;
  p.gate_cumsum = fc.gate_cumsum.data_ptr<float>();
  return fc;
}
}  // namespace

std::tuple<at::Tensor, at::Tensor, at::Tensor> lawcat_core_fwd(const at::Tensor& q, const at::Tensor& k,
                                                               const at::Tensor& v, const at::Tensor& a,
                                                               const at::Tensor& conv_q, const at::Tensor& conv_k,
                                                               const at::Tensor& wphi, const at::Tensor& w2,
                                                               const at::Tensor& b2, double tau, double eps,
                                                               bool normalize, LawcatCoreSaved* saved) {
  const char* op = "lawcat_core_fwd";
  const c10::cuda::CUDAGuard guard(q.device());
  // One wave of the fused kernel: 2 CTAs per SM at D = 64 (101 KB of shared memory), 1 at D = 128.
  FusedCore fc = prepare_fused(op, q, k, v, a, conv_q, conv_k, wphi, w2, b2, tau, eps, normalize, q.size(3) == 64 ? 2 : 1);
  const int64_t B = q.size(0), T = q.size(1), H = q.size(2), D = q.size(3);
  const auto f32o = q.options().dtype(at::kFloat);
  at::Tensor y = at::empty({B, T, H, D}, q.options());
  at::Tensor sT = at::empty({B, H, D, D}, f32o), zT = at::empty({B, H, D}, f32o);
  fc.p.gla.y = y.data_ptr();
  fc.p.gla.sT = sT.data_ptr<float>();
  fc.p.gla.zT = zT.data_ptr<float>();
  if (saved != nullptr) {  // training: what the fused backward reads
    saved->state_chunks = at::empty({std::max<int64_t>(fc.pl.num_chunks, 1), H, D, D}, f32o);
    saved->z_chunks = at::empty({std::max<int64_t>(fc.pl.num_chunks, 1), H, D}, f32o);
    saved->den = at::empty({B * T, H}, f32o);
    saved->qprime = at::empty({B, T, H, D}, q.options());
    fc.p.qprime = saved->qprime.data_ptr();
    if (k::lawcat_bwd_reads_kprime(static_cast<int>(D))) {
      saved->kprime = at::empty({B, T, H, D}, q.options());
      fc.p.kprime = saved->kprime.data_ptr();
    }
    fc.p.state_chunks = saved->state_chunks.data_ptr<float>();
    fc.p.z_chunks = saved->z_chunks.data_ptr<float>();
    fc.p.den = saved->den.data_ptr<float>();
  }
  if (B * T > 0) check_launch(k::launch_lawcat_fwd(fc.p, at::cuda::getCurrentCUDAStream()), op);
  else { sT.zero_(); zT.zero_(); }
  return {y, sT, zT};
}

bool lawcat_core_bwd_supported(const at::Tensor& q, int64_t width, int64_t rank) {
  return lawcat_core_fwd_supported(q, width, rank) &&
         k::lawcat_bwd_supported(to_kdtype(q.scalar_type()), static_cast<int>(q.size(3)), static_cast<int>(width),
                                 static_cast<int>(rank));
}

LawcatCoreGrads lawcat_core_bwd(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& a,
                                const at::Tensor& conv_q, const at::Tensor& conv_k, const at::Tensor& wphi,
                                const at::Tensor& w2, const at::Tensor& b2, double tau, double eps, bool normalize,
                                const at::Tensor& y, const at::Tensor& dy, const LawcatCoreSaved& saved) {
  const char* op = "lawcat_core_bwd";
  const c10::cuda::CUDAGuard guard(q.device());
  const int64_t W = conv_q.dim() == 2 ? conv_q.size(1) : -1;
  TORCH_CHECK(lawcat_core_bwd_supported(q, W, a.size(-1)), op, ": unsupported configuration (dtype ",
              q.scalar_type(), ", D ", q.size(-1), ", conv width ", W, "); use the unfused ops");
  FusedCore fc = prepare_fused(op, q, k, v, a, conv_q, conv_k, wphi, w2, b2, tau, eps, normalize, 1);
  const int64_t B = q.size(0), T = q.size(1), H = q.size(2), D = q.size(3), Hkv = k.size(2);
  TORCH_CHECK(y.sizes() == q.sizes() && dy.sizes() == q.sizes(), op, ": y and dy must be ", q.sizes(), ", got ",
              y.sizes(), " and ", dy.sizes());
  TORCH_CHECK(saved.state_chunks.defined() && saved.state_chunks.size(0) == std::max<int64_t>(fc.pl.num_chunks, 1) &&
                  saved.den.defined() && saved.den.numel() == B * T * H && saved.qprime.defined() &&
                  saved.qprime.sizes() == q.sizes() &&
                  (!k::lawcat_bwd_reads_kprime(static_cast<int>(D)) ||
                   (saved.kprime.defined() && saved.kprime.sizes() == q.sizes())),
              op, ": the saved forward tensors do not fit these inputs");
  const at::Tensor yc = y.to(q.scalar_type()).contiguous(), dyc = dy.to(q.scalar_type()).contiguous();
  const auto f32o = q.options().dtype(at::kFloat);
  LawcatCoreGrads g;
  g.dq = at::empty({B, T, H, D}, q.options());  // written once by the kernels, in q's dtype
  const at::Tensor dq_edge = at::empty({std::max<int64_t>(fc.pl.num_segs, 1), H, 2, k::kDqEdgeRows, D}, f32o);
  g.dk = at::zeros({B, T, Hkv, D}, f32o);
  g.dv = at::zeros({B, T, Hkv, D}, f32o);
  g.dlogit = at::zeros({B, T, Hkv, D}, f32o);
  g.db = at::zeros({Hkv * D}, f32o);
  const at::Tensor gate_dlogit = at::empty({B, T, Hkv, D}, f32o);
  g.dconv_q = at::zeros({H * D, W}, f32o);
  g.dconv_k = at::zeros({H * D, W}, f32o);
  g.dwphi = at::zeros({H, D, D / 2}, f32o);
  at::Tensor extreme = at::zeros({1}, q.options().dtype(at::kInt));
  k::LawcatBwdParams p;
  p.fwd = fc.p;
  p.fwd.state_chunks = saved.state_chunks.data_ptr<float>();
  p.fwd.z_chunks = saved.z_chunks.data_ptr<float>();
  p.fwd.den = saved.den.data_ptr<float>();
  p.fwd.qprime = saved.qprime.data_ptr();
  p.fwd.kprime = saved.kprime.defined() ? saved.kprime.data_ptr() : nullptr;
  p.fwd.gate_dlogit = gate_dlogit.data_ptr<float>();
  p.y = yc.data_ptr();
  p.dy = dyc.data_ptr();
  p.dq = g.dq.data_ptr();
  p.dq_edge = dq_edge.data_ptr<float>();
  p.dk = g.dk.data_ptr<float>();
  p.dv = g.dv.data_ptr<float>();
  p.dlogit = g.dlogit.data_ptr<float>();
  p.db = g.db.data_ptr<float>();
  p.dconv_q = g.dconv_q.data_ptr<float>();
  p.dconv_k = g.dconv_k.data_ptr<float>();
  p.dwphi = g.dwphi.data_ptr<float>();
  p.extreme_chunks = extreme.data_ptr<int>();
  if (B * T > 0) check_launch(k::launch_lawcat_bwd(p, at::cuda::getCurrentCUDAStream()), op);
  g.extreme_chunks = extreme;
  return g;
}

bool lawcat_step_fused_supported(const at::Tensor& q, int64_t head_dim, int64_t width, int64_t rank) {
  return q.is_cuda() && (q.scalar_type() == at::kBFloat16 || q.scalar_type() == at::kHalf) &&
         k::lawcat_step_supported(to_kdtype(q.scalar_type()), static_cast<int>(head_dim), static_cast<int>(width),
                                  static_cast<int>(rank));
}

at::Tensor lawcat_step_fused(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& a,
                             const at::Tensor& conv_q, const at::Tensor& conv_k, at::Tensor& conv_q_cache,
                             at::Tensor& conv_k_cache, const at::Tensor& wphi, const at::Tensor& w2,
                             const at::Tensor& b2, at::Tensor& S, at::Tensor& z, double tau, double eps,
                             bool normalize) {
  const char* op = "lawcat_step_fused";
  TORCH_CHECK(q.dim() == 2 && k.dim() == 2 && v.dim() == 2 && a.dim() == 2 && wphi.dim() == 3, op,
              ": q [B, H*D], k, v [B, Hkv*D], a [B, R], wphi [H, D, D/2] expected, got ", q.sizes(), ", ", k.sizes(),
              ", ", v.sizes(), ", ", a.sizes(), ", ", wphi.sizes());
  const int64_t B = q.size(0), H = wphi.size(0), D = wphi.size(1), R = a.size(1);
  const int64_t W = conv_q.dim() == 2 ? conv_q.size(1) : -1;
  TORCH_CHECK(lawcat_step_fused_supported(q, D, W, R), op, ": unsupported configuration (dtype ", q.scalar_type(),
              ", D ", D, ", conv width ", W, ", gate rank ", R, "); use the separate ops");
  TORCH_CHECK(q.size(1) == H * D && k.size(1) % D == 0 && k.sizes() == v.sizes() && k.size(0) == B && a.size(0) == B,
              op, ": q ", q.sizes(), ", k ", k.sizes(), ", v ", v.sizes(), ", a ", a.sizes(), " do not fit wphi ",
              wphi.sizes());
  const int64_t Hkv = k.size(1) / D;
  TORCH_CHECK(Hkv > 0 && H % Hkv == 0, op, ": ", H, " query heads are not a multiple of ", Hkv, " kv heads");
  TORCH_CHECK(k.scalar_type() == q.scalar_type() && v.scalar_type() == q.scalar_type(), op,
              ": q, k, v must share one dtype");
  TORCH_CHECK(a.scalar_type() == at::kFloat && a.is_cuda(), op, ": a must be fp32 on CUDA");
  TORCH_CHECK(conv_q.size(0) == H * D && conv_k.sizes() == conv_q.sizes(), op,
              ": conv_q / conv_k must be [H*D, W], got ", conv_q.sizes(), ", ", conv_k.sizes());
  TORCH_CHECK(wphi.size(2) == D / 2, op, ": wphi must be [H, D, D/2], got ", wphi.sizes());
  TORCH_CHECK(w2.sizes() == at::IntArrayRef({Hkv * D, R}) && (!b2.defined() || b2.numel() == Hkv * D), op,
              ": w2 must be [Hkv*D, R] and b2 [Hkv*D], got ", w2.sizes(), b2.defined() ? b2.sizes() : at::IntArrayRef{});
  const auto f32 = q.options().dtype(at::kFloat);
  if (!S.defined()) S = at::zeros({B, H, D, D}, f32);
  if (!z.defined()) z = at::zeros({B, H, D}, f32);
  TORCH_CHECK(S.sizes() == at::IntArrayRef({B, H, D, D}) && z.sizes() == at::IntArrayRef({B, H, D}) &&
                  S.scalar_type() == at::kFloat && z.scalar_type() == at::kFloat && S.is_contiguous() &&
                  z.is_contiguous(),
              op, ": state must be [B, H, D, D] and normalizer [B, H, D], fp32 contiguous, got ", S.sizes(), ", ",
              z.sizes());
  if (W > 1) {
    for (at::Tensor* c : {&conv_q_cache, &conv_k_cache}) {
      if (!c->defined()) *c = at::zeros({B, H * D, W - 1}, q.options());
      TORCH_CHECK(c->sizes() == at::IntArrayRef({B, H * D, W - 1}) && c->scalar_type() == q.scalar_type() &&
                      c->is_contiguous(),
                  op, ": conv caches must be [B, H*D, W-1] = [", B, ", ", H * D, ", ", W - 1, "] contiguous in q's dtype, got ",
                  c->sizes());
    }
  }
  const at::Tensor qc = kernel_ready(q), kc = kernel_ready(k), vc = kernel_ready(v), ac = kernel_ready(a);
  const at::Tensor cq = fp32_contiguous(conv_q), ck = fp32_contiguous(conv_k), wp = fp32_contiguous(wphi),
                   w2f = fp32_contiguous(w2), b2f = fp32_contiguous(b2);
  at::Tensor y = at::empty({B, H, D}, q.options());
  k::LawcatStepParams p;
  p.dtype = to_kdtype(q.scalar_type());
  p.batch = static_cast<int>(B), p.H = static_cast<int>(H), p.Hkv = static_cast<int>(Hkv), p.D = static_cast<int>(D);
  p.width = static_cast<int>(W), p.rank = static_cast<int>(R);
  p.tau = static_cast<float>(tau), p.eps = static_cast<float>(eps), p.normalize = normalize;
  p.q = qc.data_ptr(), p.k = kc.data_ptr(), p.v = vc.data_ptr();
  p.q_batch_stride = qc.stride(0), p.k_batch_stride = kc.stride(0), p.v_batch_stride = vc.stride(0);
  p.a = ac.data_ptr<float>(), p.a_batch_stride = ac.stride(0);
  p.conv_q = cq.data_ptr<float>(), p.conv_k = ck.data_ptr<float>();
  if (W > 1) p.conv_q_cache = conv_q_cache.data_ptr(), p.conv_k_cache = conv_k_cache.data_ptr();
  p.wphi = wp.data_ptr<float>(), p.w2 = w2f.data_ptr<float>(), p.b2 = b2f.defined() ? b2f.data_ptr<float>() : nullptr;
  p.state = S.data_ptr<float>(), p.normalizer = z.data_ptr<float>();
  p.y = y.data_ptr();
  const c10::cuda::CUDAGuard guard(q.device());
  check_launch(k::launch_lawcat_step(p, at::cuda::getCurrentCUDAStream()), op);
  return y;
}

}  // namespace lawcat::ops::cuda
#endif  // LAWCAT_HAVE_CUDA
