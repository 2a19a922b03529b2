// CUDA bindings of the chunked GLA kernels (csrc_kernels/gla): shape checks, dtype
// conversion (q's dtype when bf16 / fp16 / fp32, else fp32; g and states fp32),
// zero-padding of F and V up to the kernels' head dims {64, 128} (zero q, k, v and a
// zero log-gate on the padded features change nothing; the padding is sliced off),
// the segment plan (how many CTAs walk each sequence), workspace, launch, and the
// conversion of results back to the callers' dtypes (y: v's; grads: their inputs').
#ifdef LAWCAT_HAVE_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include <algorithm>
#include <cstdlib>
#include <vector>

#include "api.h"
#include "ops/cuda_ops.h"

namespace lawcat::ops::cuda {
namespace {

namespace k = lawcat::kernels;

at::ScalarType kernel_dtype(at::ScalarType t) {
  return (t == at::kBFloat16 || t == at::kHalf || t == at::kFloat) ? t : at::kFloat;
}
k::DType to_kdtype(at::ScalarType t) {
  return t == at::kBFloat16 ? k::DType::kBF16 : t == at::kHalf ? k::DType::kF16 : k::DType::kF32;
}
void check_launch(cudaError_t err, const char* op) {
  TORCH_CHECK(err == cudaSuccess, op, ": CUDA kernel launch failed: ", cudaGetErrorString(err));
}
int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Pad the last dim to n with zeros (and the second-to-last to m when m > 0).
at::Tensor pad_last(const at::Tensor& t, int64_t n, int64_t m = 0) {
  const int64_t dl = n - t.size(-1), dm = m > 0 ? m - t.size(-2) : 0;
  if (dl == 0 && dm == 0) return t;
  return at::constant_pad_nd(t, {0, dl, 0, dm}, 0.0);
}

// Kernel-ready view: last dim contiguous, row strides and base 16-byte aligned.
at::Tensor kernel_ready(const at::Tensor& t) {
  const int64_t vec = 16 / t.element_size();
  bool ok = t.stride(-1) == 1 && reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 == 0;
  for (int64_t d = 0; d + 1 < t.dim(); ++d) ok = ok && (t.stride(d) % vec == 0 || t.size(d) == 1);
  return ok ? t : t.contiguous();
}

struct Inputs {
  at::Tensor q, k, v, g, s0, z0;  // kernel dtype / fp32, padded to D
  int64_t B, T, H, Hkv, F, V, D;
  at::ScalarType dt;
};

Inputs prepare(const char* op, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& g,
               const at::Tensor& s0, const at::Tensor& z0, int64_t num_seqs) {
  TORCH_CHECK(q.is_cuda(), op, ": q must be a CUDA tensor");
  TORCH_CHECK(q.dim() == 4 && k.sizes() == q.sizes(), op, ": q, k must be [B, T, H, F], got ", q.sizes(), " and ",
              k.sizes());
  TORCH_CHECK(v.dim() == 4 && g.dim() == 4, op, ": v, g must be 4-d [B, T, Hkv, *], got ", v.sizes(), " and ",
              g.sizes());
  Inputs in;
  in.B = q.size(0);
  in.T = q.size(1);
  in.H = q.size(2);
  in.F = q.size(3);
  in.Hkv = v.size(2);
  in.V = v.size(3);
  TORCH_CHECK(v.size(0) == in.B && v.size(1) == in.T && in.Hkv >= 1 && in.H % in.Hkv == 0, op, ": v ", v.sizes(),
              " does not fit q ", q.sizes(), " (need [B, T, Hkv, V] with H % Hkv == 0)");
  TORCH_CHECK(g.sizes() == at::IntArrayRef({in.B, in.T, in.Hkv, in.F}), op, ": g must be [B, T, Hkv, F] = [", in.B,
              ", ", in.T, ", ", in.Hkv, ", ", in.F, "], got ", g.sizes());
  const int64_t dmax = std::max(in.F, in.V);
  TORCH_CHECK(dmax <= 128, op, ": the CUDA kernels support F, V <= 128 (head dims 64 / 128, smaller ones padded), got F = ",
              in.F, ", V = ", in.V);
  in.D = dmax <= 64 ? 64 : 128;
  in.dt = kernel_dtype(q.scalar_type());
  in.q = kernel_ready(pad_last(q.to(in.dt), in.D));
  in.k = kernel_ready(pad_last(k.to(in.dt), in.D));
  in.v = kernel_ready(pad_last(v.to(in.dt), in.D));
  in.g = kernel_ready(pad_last(g.to(at::kFloat), in.D));
  TORCH_CHECK(s0.defined() == z0.defined(), op, ": give both initial state and normalizer or neither");
  if (s0.defined()) {
    TORCH_CHECK(s0.sizes() == at::IntArrayRef({num_seqs, in.H, in.F, in.V}), op, ": initial state must be [",
                num_seqs, ", ", in.H, ", ", in.F, ", ", in.V, "], got ", s0.sizes());
    TORCH_CHECK(z0.sizes() == at::IntArrayRef({num_seqs, in.H, in.F}), op, ": initial normalizer must be [",
                num_seqs, ", ", in.H, ", ", in.F, "], got ", z0.sizes());
    in.s0 = pad_last(s0.to(at::kFloat), in.D, in.D).contiguous();
    in.z0 = pad_last(z0.to(at::kFloat), in.D).contiguous();
  }
  return in;
}

// Sequence / segment plan. Segments of seg_chunks chunks: enough CTAs (segments x heads)
// to fill the GPU about twice; each CTA walks its chunks with the state on chip.
struct Plan {
  int64_t N = 0, C = 64, num_chunks = 0, num_segs = 0, seg_chunks = 1, segs_per_seq = 1;
  at::Tensor tables;  // device int32: cu | chunk_offsets | seq_seg_offsets | seg_seq | seg_c0 | seg_c1
  const int *cu = nullptr, *chunk_off = nullptr, *seq_seg_off = nullptr, *seg_seq = nullptr, *seg_c0 = nullptr,
            *seg_c1 = nullptr;
};

int sm_count() {
  static int n = at::cuda::getCurrentDeviceProperties()->multiProcessorCount;
  return n;
}

// CTAs (segments x heads) to aim for, per SM: $LAWCAT_GLA_CTAS_PER_SM (default 2).
int64_t ctas_per_sm() {
  static const int64_t n = [] {
    const char* e = std::getenv("LAWCAT_GLA_CTAS_PER_SM");
    return e != nullptr && std::atoi(e) > 0 ? int64_t(std::atoi(e)) : int64_t(2);
  }();
  return n;
}

// per_sm: CTAs that fit on one SM (0 = $LAWCAT_GLA_CTAS_PER_SM / 2, the GLA kernels' value).
Plan make_plan(const Inputs& in, const at::Tensor& cu_seqlens, int64_t per_sm = 0) {
  Plan pl;
  pl.C = k::gla_chunk_size(to_kdtype(in.dt), static_cast<int>(in.D));
  const int64_t target_ctas = (per_sm > 0 ? per_sm : ctas_per_sm()) * sm_count();
  if (!cu_seqlens.defined()) {
    pl.N = in.B;
    const int64_t nc = ceil_div(in.T, pl.C);
    const int64_t nseg = std::max<int64_t>(1, std::min<int64_t>(nc, target_ctas / std::max<int64_t>(1, in.B * in.H)));
    pl.seg_chunks = std::max<int64_t>(1, ceil_div(nc, nseg));
    pl.segs_per_seq = nc > 0 ? ceil_div(nc, pl.seg_chunks) : 0;
    pl.num_chunks = pl.N * nc;
    pl.num_segs = pl.N * pl.segs_per_seq;
    if (pl.segs_per_seq == 0) pl.segs_per_seq = 1;  // combine: T == 0 handled in the kernel
    return pl;
  }
  TORCH_CHECK(cu_seqlens.dim() == 1 && cu_seqlens.size(0) >= 1, "chunk_gla varlen: cu_seqlens must be [N+1], got ",
              cu_seqlens.sizes());
  TORCH_CHECK(in.B == 1, "chunk_gla varlen: packed inputs must have B = 1, got B = ", in.B);
  const at::Tensor cu_cpu = cu_seqlens.to(at::kCPU, at::kLong).contiguous();
  const int64_t* cu = cu_cpu.data_ptr<int64_t>();
  pl.N = cu_seqlens.size(0) - 1;
  TORCH_CHECK(cu[0] == 0 && cu[pl.N] == in.T, "chunk_gla varlen: cu_seqlens must start at 0 and end at T = ", in.T,
              ", got ", cu[0], " .. ", cu[pl.N]);
  std::vector<int64_t> nc(pl.N);
  for (int64_t n = 0; n < pl.N; ++n) {
    TORCH_CHECK(cu[n + 1] >= cu[n], "chunk_gla varlen: cu_seqlens must be non-decreasing");
    nc[n] = ceil_div(cu[n + 1] - cu[n], pl.C);
    pl.num_chunks += nc[n];
  }
  const int64_t want_segs = std::max<int64_t>(pl.N, target_ctas / std::max<int64_t>(1, in.H));
  pl.seg_chunks = std::max<int64_t>(1, ceil_div(pl.num_chunks, want_segs));
  std::vector<int> t_cu(pl.N + 1), t_chunk(pl.N + 1), t_segoff(pl.N + 1), t_seq, t_c0, t_c1;
  int64_t chunks = 0, max_segs = 1;
  for (int64_t n = 0; n < pl.N; ++n) {
    t_cu[n] = static_cast<int>(cu[n]);
    t_chunk[n] = static_cast<int>(chunks);
    t_segoff[n] = static_cast<int>(t_seq.size());
    const int64_t ns = ceil_div(nc[n], pl.seg_chunks);
    max_segs = std::max(max_segs, ns);
    for (int64_t s = 0; s < ns; ++s) {
      t_seq.push_back(static_cast<int>(n));
      t_c0.push_back(static_cast<int>(s * pl.seg_chunks));
      t_c1.push_back(static_cast<int>(std::min(nc[n], (s + 1) * pl.seg_chunks)));
    }
    chunks += nc[n];
  }
  t_cu[pl.N] = static_cast<int>(cu[pl.N]);
  t_chunk[pl.N] = static_cast<int>(chunks);
  t_segoff[pl.N] = static_cast<int>(t_seq.size());
  pl.num_segs = static_cast<int64_t>(t_seq.size());
  pl.segs_per_seq = max_segs;
  std::vector<int> all;
  for (auto* v : {&t_cu, &t_chunk, &t_segoff, &t_seq, &t_c0, &t_c1}) all.insert(all.end(), v->begin(), v->end());
  pl.tables = at::from_blob(all.data(), {static_cast<int64_t>(all.size())}, at::kInt).to(in.q.device());
  const int* base = pl.tables.data_ptr<int>();
  const int64_t n1 = pl.N + 1, S = pl.num_segs;
  pl.cu = base;
  pl.chunk_off = base + n1;
  pl.seq_seg_off = base + 2 * n1;
  pl.seg_seq = base + 3 * n1;
  pl.seg_c0 = base + 3 * n1 + S;
  pl.seg_c1 = base + 3 * n1 + 2 * S;
  return pl;
}

k::GlaParams base_params(const Inputs& in, const Plan& pl, const GlaOptions& o) {
  k::GlaParams p;
  p.dtype = to_kdtype(in.dt);
  p.num_seqs = static_cast<int>(pl.N);
  p.seqlen = static_cast<int>(in.T);
  p.H = static_cast<int>(in.H);
  p.Hkv = static_cast<int>(in.Hkv);
  p.D = static_cast<int>(in.D);
  p.eps = static_cast<float>(o.eps);
  p.normalize = o.normalize;
  p.q = in.q.data_ptr();
  p.k = in.k.data_ptr();
  p.v = in.v.data_ptr();
  p.g = in.g.defined() ? in.g.data_ptr<float>() : nullptr;  // undefined for the fused LAWCAT forward
  p.q_batch_stride = in.q.stride(0), p.q_row_stride = in.q.stride(1), p.q_head_stride = in.q.stride(2);
  p.k_batch_stride = in.k.stride(0), p.k_row_stride = in.k.stride(1), p.k_head_stride = in.k.stride(2);
  p.v_batch_stride = in.v.stride(0), p.v_row_stride = in.v.stride(1), p.v_head_stride = in.v.stride(2);
  if (in.g.defined())
    p.g_batch_stride = in.g.stride(0), p.g_row_stride = in.g.stride(1), p.g_head_stride = in.g.stride(2);
  p.cu_seqlens = pl.cu;
  p.chunk_offsets = pl.chunk_off;
  p.seq_seg_offsets = pl.seq_seg_off;
  p.seg_seq = pl.seg_seq;
  p.seg_c0 = pl.seg_c0;
  p.seg_c1 = pl.seg_c1;
  p.seg_chunks = static_cast<int>(pl.seg_chunks);
  p.segs_per_seq = static_cast<int>(pl.segs_per_seq);
  p.num_segs = static_cast<int>(pl.num_segs);
  p.chunk_size = static_cast<int>(pl.C);
  p.num_chunks = static_cast<int>(pl.num_chunks);
  p.num_slots = static_cast<int>(pl.num_chunks + pl.N);
  p.s0 = in.s0.defined() ? in.s0.data_ptr<float>() : nullptr;
  p.z0 = in.z0.defined() ? in.z0.data_ptr<float>() : nullptr;
  return p;
}

at::Tensor unpad(const at::Tensor& t, int64_t n, int64_t m = 0) {
  at::Tensor r = t.size(-1) == n ? t : t.narrow(-1, 0, n);
  if (m > 0 && r.size(-2) != m) r = r.narrow(-2, 0, m);
  return r;
}

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
  auto f32 = [](const at::Tensor& t) { return t.defined() ? t.to(at::kFloat).contiguous() : t; };
  const at::Tensor cq = f32(conv_q), ck = f32(conv_k), wp = f32(wphi), w2f = f32(w2), b2f = f32(b2);
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
  auto f32 = [](const at::Tensor& t) { return t.defined() ? t.to(at::kFloat).contiguous() : t; };
  fc.cq = f32(conv_q), fc.ck = f32(conv_k), fc.wp = f32(wphi), fc.w2f = f32(w2), fc.b2f = f32(b2);
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

}  // namespace lawcat::ops::cuda
#endif  // LAWCAT_HAVE_CUDA
