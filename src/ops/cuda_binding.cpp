// The shared helpers of the CUDA bindings (ops/cuda_binding.h).
#ifdef LAWCAT_HAVE_CUDA
#include "ops/cuda_binding.h"

#include <ATen/cuda/CUDAContext.h>

#include <algorithm>
#include <cstdlib>
#include <vector>

namespace lawcat::ops::cuda::binding {

// Pad the last dim to n with zeros (and the second-to-last to m when m > 0).
at::Tensor pad_last(const at::Tensor& t, int64_t n, int64_t m) {
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
Plan make_plan(const Inputs& in, const at::Tensor& cu_seqlens, int64_t per_sm) {
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

at::Tensor unpad(const at::Tensor& t, int64_t n, int64_t m) {
  at::Tensor r = t.size(-1) == n ? t : t.narrow(-1, 0, n);
  if (m > 0 && r.size(-2) != m) r = r.narrow(-2, 0, m);
  return r;
}

}  // namespace lawcat::ops::cuda::binding
#endif  // LAWCAT_HAVE_CUDA
