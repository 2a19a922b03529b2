// CUDA bindings of the chunked GLA kernels (csrc_kernels/gla): shape checks, dtype
// conversion (q's dtype when bf16 / fp16 / fp32, else fp32; g and states fp32),
// zero-padding of F and V up to the kernels' head dims {64, 128} (zero q, k, v and a
// zero log-gate on the padded features change nothing; the padding is sliced off),
// the segment plan (how many CTAs walk each sequence), workspace, launch, and the
// conversion of results back to the callers' dtypes (y: v's; grads: their inputs'). The
// helpers shared with the LAWCAT bindings (ops/lawcat_core_cuda.cpp) are in ops/cuda_binding.h.
#ifdef LAWCAT_HAVE_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include <algorithm>
#include <cstdlib>
#include <vector>

#include "api.h"
#include "ops/cuda_binding.h"
#include "ops/cuda_ops.h"

namespace lawcat::ops::cuda {
using namespace binding;
namespace {

std::tuple<at::Tensor, at::Tensor, at::Tensor> fwd_impl(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                                        const at::Tensor& g, const at::Tensor& s0, const at::Tensor& z0,
                                                        const at::Tensor& cu_seqlens, const GlaOptions& o) {
  const char* op = cu_seqlens.defined() ? "chunk_gla varlen" : "chunk_gla";
  const c10::cuda::CUDAGuard guard(q.device());
  const int64_t N = cu_seqlens.defined() ? cu_seqlens.size(0) - 1 : q.size(0);
  Inputs in = prepare(op, q, k, v, g, s0, z0, N);
  Plan pl = make_plan(in, cu_seqlens);
  const auto f32 = in.q.options().dtype(at::kFloat);
  at::Tensor y = at::empty({in.B, in.T, in.H, in.D}, in.q.options());
  at::Tensor sT = at::empty({pl.N, in.H, in.D, in.D}, f32);
  at::Tensor zT = at::empty({pl.N, in.H, in.D}, f32);
  at::Tensor seg_S = at::empty({std::max<int64_t>(pl.num_segs, 1), in.H, in.D, in.D}, f32);
  at::Tensor seg_z = at::empty({std::max<int64_t>(pl.num_segs, 1), in.H, in.D}, f32);
  at::Tensor seg_gamma = at::empty_like(seg_z);
  k::GlaParams p = base_params(in, pl, o);
  p.y = y.data_ptr();
  p.sT = sT.data_ptr<float>();
  p.zT = zT.data_ptr<float>();
  p.seg_S = seg_S.data_ptr<float>();
  p.seg_z = seg_z.data_ptr<float>();
  p.seg_gamma = seg_gamma.data_ptr<float>();
  check_launch(k::launch_gla_fwd(p, at::cuda::getCurrentCUDAStream()), op);
  return {unpad(y, in.V).to(v.scalar_type()), unpad(sT, in.V, in.F), unpad(zT, in.F)};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> bwd_impl(
    const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& g, const at::Tensor& s0,
    const at::Tensor& z0, const at::Tensor& dy, const at::Tensor& dS_T, const at::Tensor& dz_T,
    const at::Tensor& cu_seqlens, const GlaOptions& o) {
  const char* op = cu_seqlens.defined() ? "chunk_gla varlen backward" : "chunk_gla backward";
  const c10::cuda::CUDAGuard guard(q.device());
  const int64_t N = cu_seqlens.defined() ? cu_seqlens.size(0) - 1 : q.size(0);
  Inputs in = prepare(op, q, k, v, g, s0, z0, N);
  Plan pl = make_plan(in, cu_seqlens);
  TORCH_CHECK(dy.defined() && dy.sizes() == at::IntArrayRef({in.B, in.T, in.H, in.V}), op, ": dy must be [B, T, H, V] = [",
              in.B, ", ", in.T, ", ", in.H, ", ", in.V, "], got ", dy.defined() ? dy.sizes() : at::IntArrayRef{});
  const auto f32 = in.q.options().dtype(at::kFloat);
  const at::Tensor dyp = pad_last(dy.to(in.dt), in.D).contiguous();
  at::Tensor dSTp, dzTp;
  if (dS_T.defined()) {
    TORCH_CHECK(dS_T.sizes() == at::IntArrayRef({N, in.H, in.F, in.V}), op, ": dS_T must be [", N, ", ", in.H, ", ",
                in.F, ", ", in.V, "], got ", dS_T.sizes());
    dSTp = pad_last(dS_T.to(at::kFloat), in.D, in.D).contiguous();
  }
  if (dz_T.defined()) {
    TORCH_CHECK(dz_T.sizes() == at::IntArrayRef({N, in.H, in.F}), op, ": dz_T must be [", N, ", ", in.H, ", ", in.F,
                "], got ", dz_T.sizes());
    dzTp = pad_last(dz_T.to(at::kFloat), in.D).contiguous();
  }
  const int64_t tok = in.B * in.T, segs = std::max<int64_t>(pl.num_segs, 1);
  const int64_t chunks = std::max<int64_t>(pl.num_chunks, 1), slots = pl.num_chunks + pl.N;
  at::Tensor seg_S = at::empty({segs, in.H, in.D, in.D}, f32);
  at::Tensor seg_z = at::empty({segs, in.H, in.D}, f32);
  at::Tensor seg_gamma = at::empty_like(seg_z);
  at::Tensor chunk_S = at::empty({std::max<int64_t>(slots, 1), in.H, in.D, in.D}, f32);
  at::Tensor chunk_z = at::empty({std::max<int64_t>(slots, 1), in.H, in.D}, f32);
  at::Tensor chunk_dS = at::empty({chunks, in.H, in.D, in.D}, f32);
  at::Tensor chunk_dz = at::empty({chunks, in.H, in.D}, f32);
  at::Tensor chunk_A = at::empty({chunks, in.H, pl.C, pl.C}, in.q.options());
  at::Tensor den = at::empty({std::max<int64_t>(tok, 1), in.H}, f32);
  at::Tensor dd = at::empty({std::max<int64_t>(tok, 1), in.H}, f32);
  at::Tensor dq = at::empty({in.B, in.T, in.H, in.D}, in.q.options());
  at::Tensor dk = at::empty({in.B, in.T, in.H, in.D}, in.q.options());
  at::Tensor dv = at::zeros({in.B, in.T, in.Hkv, in.D}, f32);
  at::Tensor dg = at::zeros({in.B, in.T, in.Hkv, in.D}, f32);
  at::Tensor ds0, dz0;
  if (s0.defined()) {
    ds0 = at::empty({N, in.H, in.D, in.D}, f32);
    dz0 = at::empty({N, in.H, in.D}, f32);
  }
  k::GlaParams p = base_params(in, pl, o);
  p.seg_S = seg_S.data_ptr<float>();
  p.seg_z = seg_z.data_ptr<float>();
  p.seg_gamma = seg_gamma.data_ptr<float>();
  p.chunk_S = chunk_S.data_ptr<float>();
  p.chunk_z = chunk_z.data_ptr<float>();
  p.chunk_dS = chunk_dS.data_ptr<float>();
  p.chunk_dz = chunk_dz.data_ptr<float>();
  p.chunk_A = chunk_A.data_ptr();
  p.den = den.data_ptr<float>();
  p.dd = dd.data_ptr<float>();
  p.dy = dyp.data_ptr();
  p.dST = dSTp.defined() ? dSTp.data_ptr<float>() : nullptr;
  p.dzT = dzTp.defined() ? dzTp.data_ptr<float>() : nullptr;
  p.dq = dq.data_ptr();
  p.dk = dk.data_ptr();
  p.dv = dv.data_ptr<float>();
  p.dg = dg.data_ptr<float>();
  p.ds0 = ds0.defined() ? ds0.data_ptr<float>() : nullptr;
  p.dz0 = dz0.defined() ? dz0.data_ptr<float>() : nullptr;
  check_launch(k::launch_gla_bwd(p, at::cuda::getCurrentCUDAStream()), op);
  at::Tensor rds0, rdz0;
  if (s0.defined()) {
    rds0 = unpad(ds0, in.V, in.F).to(s0.scalar_type());
    rdz0 = unpad(dz0, in.F).to(z0.scalar_type());
  }
  return {unpad(dq, in.F).to(q.scalar_type()), unpad(dk, in.F).to(k.scalar_type()),
          unpad(dv, in.V).to(v.scalar_type()), unpad(dg, in.F).to(g.scalar_type()), rds0, rdz0};
}

}  // namespace

std::tuple<at::Tensor, at::Tensor, at::Tensor> chunk_gla_fwd(const at::Tensor& q, const at::Tensor& k,
                                                             const at::Tensor& v, const at::Tensor& g,
                                                             const at::Tensor& s0, const at::Tensor& z0,
                                                             const GlaOptions& options) {
  return fwd_impl(q, k, v, g, s0, z0, at::Tensor(), options);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> chunk_gla_bwd(
    const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& g, const at::Tensor& s0,
    const at::Tensor& z0, const at::Tensor& dy, const at::Tensor& dS_T, const at::Tensor& dz_T,
    const GlaOptions& options) {
  return bwd_impl(q, k, v, g, s0, z0, dy, dS_T, dz_T, at::Tensor(), options);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> chunk_gla_fwd_varlen(const at::Tensor& q, const at::Tensor& k,
                                                                    const at::Tensor& v, const at::Tensor& g,
                                                                    const at::Tensor& s0, const at::Tensor& z0,
                                                                    const at::Tensor& cu_seqlens,
                                                                    const GlaOptions& options) {
  TORCH_CHECK(cu_seqlens.defined(), "chunk_gla_fwd_varlen: cu_seqlens must be defined");
  return fwd_impl(q, k, v, g, s0, z0, cu_seqlens, options);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> chunk_gla_bwd_varlen(
    const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& g, const at::Tensor& s0,
    const at::Tensor& z0, const at::Tensor& dy, const at::Tensor& dS_T, const at::Tensor& dz_T,
    const at::Tensor& cu_seqlens, const GlaOptions& options) {
  TORCH_CHECK(cu_seqlens.defined(), "chunk_gla_bwd_varlen: cu_seqlens must be defined");
  return bwd_impl(q, k, v, g, s0, z0, dy, dS_T, dz_T, cu_seqlens, options);
}

at::Tensor gla_step(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& g,
                    at::Tensor& state, at::Tensor& normalizer, const GlaOptions& options) {
  const char* op = "gla_step";
  const c10::cuda::CUDAGuard guard(q.device());
  TORCH_CHECK(q.dim() == 3 && k.sizes() == q.sizes() && v.dim() == 3 && g.dim() == 3, op,
              ": q, k [B, H, F], v [B, Hkv, V], g [B, Hkv, F] expected, got ", q.sizes(), ", ", k.sizes(), ", ",
              v.sizes(), ", ", g.sizes());
  const int64_t B = q.size(0), H = q.size(1), F = q.size(2), Hkv = v.size(1), V = v.size(2);
  TORCH_CHECK(Hkv >= 1 && H % Hkv == 0 && g.sizes() == at::IntArrayRef({B, Hkv, F}), op, ": bad v / g shapes ",
              v.sizes(), ", ", g.sizes());
  TORCH_CHECK(state.sizes() == at::IntArrayRef({B, H, F, V}) && normalizer.sizes() == at::IntArrayRef({B, H, F}), op,
              ": state must be [B, H, F, V], normalizer [B, H, F]");
  const auto dt = kernel_dtype(q.scalar_type());
  at::Tensor qc = q.to(dt).contiguous(), kc = k.to(dt).contiguous(), vc = v.to(dt).contiguous();
  at::Tensor gc = g.to(at::kFloat).contiguous();
  const bool direct = state.scalar_type() == at::kFloat && state.is_contiguous() &&
                      normalizer.scalar_type() == at::kFloat && normalizer.is_contiguous();
  at::Tensor S = direct ? state : state.to(at::kFloat).contiguous();
  at::Tensor z = direct ? normalizer : normalizer.to(at::kFloat).contiguous();
  at::Tensor y = at::empty({B, H, V}, qc.options());
  k::GlaStepParams p;
  p.dtype = to_kdtype(dt);
  p.batch = static_cast<int>(B);
  p.H = static_cast<int>(H);
  p.Hkv = static_cast<int>(Hkv);
  p.F = static_cast<int>(F);
  p.V = static_cast<int>(V);
  p.eps = static_cast<float>(options.eps);
  p.normalize = options.normalize;
  p.q = qc.data_ptr();
  p.k = kc.data_ptr();
  p.v = vc.data_ptr();
  p.g = gc.data_ptr<float>();
  p.q_batch_stride = qc.stride(0), p.q_head_stride = qc.stride(1);
  p.k_batch_stride = kc.stride(0), p.k_head_stride = kc.stride(1);
  p.v_batch_stride = vc.stride(0), p.v_head_stride = vc.stride(1);
  p.g_batch_stride = gc.stride(0), p.g_head_stride = gc.stride(1);
  p.state = S.data_ptr<float>();
  p.normalizer = z.data_ptr<float>();
  p.y = y.data_ptr();
  check_launch(k::launch_gla_step(p, at::cuda::getCurrentCUDAStream()), op);
  if (!direct) {
    state.copy_(S);
    normalizer.copy_(z);
  }
  return y.to(v.scalar_type());
}

}  // namespace lawcat::ops::cuda
#endif  // LAWCAT_HAVE_CUDA
