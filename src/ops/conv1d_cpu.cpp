// Causal depthwise Conv1D on CPU with batched ATen ops (one fused multiply-add
// per tap over [B, T, C]; ATen spreads each over the intra-op threads).
//
// With xp = [cache ; x] along time ([B, W-1+T, C]):
//   out[t]   = sum_j w[:, j] * xp[t + j]
//   dxp[t+j] += w[:, j] * dout[t]          (dx = dxp[W-1:], dcache = dxp[:W-1])
//   dw[:, j] = sum_{b,t} dout[b, t] * xp[b, t + j]
#include "ops/conv1d_cpu.h"

#include <c10/util/Exception.h>

#include <vector>

namespace lawcat::ops::cpu {
namespace {

at::ScalarType compute_dtype(const at::Tensor& x, const at::Tensor& w) {
  return x.scalar_type() == at::kDouble || w.scalar_type() == at::kDouble ? at::kDouble
                                                                          : at::kFloat;
}

// [B, W-1+T, C] in the compute dtype: the W-1 cached inputs (oldest first), then x.
at::Tensor padded_input(const at::Tensor& x, int64_t W, const at::Tensor& cache,
                        at::ScalarType dt) {
  const int64_t B = x.size(0), C = x.size(2);
  at::Tensor prefix = cache.defined() ? cache.to(dt).transpose(1, 2)
                                      : at::zeros({B, W - 1, C}, x.options().dtype(dt));
  return at::cat({prefix, x.to(dt)}, 1);
}

}  // namespace

at::Tensor causal_conv1d_fwd(const at::Tensor& x, const at::Tensor& w, const at::Tensor& cache) {
  at::NoGradGuard no_grad;
  const int64_t B = x.size(0), T = x.size(1), C = x.size(2), W = w.size(1);
  const auto dt = compute_dtype(x, w);
  const at::Tensor xp = padded_input(x, W, cache, dt);  // [B, W-1+T, C]
  const at::Tensor wf = w.to(dt);                       // [C, W]
  at::Tensor out = at::zeros({B, T, C}, x.options().dtype(dt));
  for (int64_t j = 0; j < W; ++j) out.addcmul_(xp.narrow(1, j, T), wf.select(1, j));
  return out.to(x.scalar_type());
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> causal_conv1d_bwd(const at::Tensor& x,
                                                                 const at::Tensor& w,
                                                                 const at::Tensor& cache,
                                                                 const at::Tensor& dout) {
  at::NoGradGuard no_grad;
  const int64_t B = x.size(0), T = x.size(1), C = x.size(2), W = w.size(1);
  const auto dt = compute_dtype(x, w);
  const at::Tensor xp = padded_input(x, W, cache, dt);  // [B, W-1+T, C]
  const at::Tensor wf = w.to(dt);
  const at::Tensor d = dout.to(dt);  // [B, T, C]
  at::Tensor dxp = at::zeros({B, W - 1 + T, C}, x.options().dtype(dt));
  std::vector<at::Tensor> dw_taps;
  dw_taps.reserve(W);
  for (int64_t j = 0; j < W; ++j) {
    dxp.narrow(1, j, T).addcmul_(d, wf.select(1, j));
    dw_taps.push_back((d * xp.narrow(1, j, T)).sum(at::IntArrayRef{0, 1}));  // [C]
  }
  at::Tensor dx = dxp.narrow(1, W - 1, T).to(x.scalar_type());
  at::Tensor dw = at::stack(dw_taps, 1).to(w.scalar_type());  // [C, W]
  at::Tensor dcache;
  if (cache.defined())
    dcache = dxp.narrow(1, 0, W - 1).transpose(1, 2).contiguous().to(cache.scalar_type());
  return {dx, dw, dcache};
}

at::Tensor causal_conv1d_step(const at::Tensor& x_t, const at::Tensor& w, at::Tensor& cache) {
  at::NoGradGuard no_grad;
  const int64_t W = w.size(1);
  const auto dt = compute_dtype(x_t, w);
  // [B, C, W]: the W-1 cached inputs, then the current one (tap W-1).
  const at::Tensor window = at::cat({cache.to(dt), x_t.to(dt).unsqueeze(-1)}, -1);
  const at::Tensor out = (window * w.to(dt)).sum(-1);  // [B, C]
  if (W > 1) cache.copy_(window.narrow(-1, 1, W - 1));
  return out.to(x_t.scalar_type());
}

}  // namespace lawcat::ops::cpu
