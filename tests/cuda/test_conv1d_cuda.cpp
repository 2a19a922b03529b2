// [cuda] causal Conv1D kernels vs the float64 CPU oracle (ops::ref::causal_conv1d_ref):
// forward, backward (dx, dw, dcache through autograd on the oracle), the GQA repeat
// variant, and the decode step against the full convolution.
#include <ATen/ATen.h>

#include "common/catch.h"
#include "cuda/cuda_check.h"
#include "ops/cuda_ops.h"
#include "ops/reference.h"

using lawcat::test::cuda_of;
using lawcat::test::f64;
using lawcat::test::rel_err;

TEST_CASE("causal_conv1d CUDA forward/backward match the float64 oracle", "[cuda]") {
  LAWCAT_REQUIRE_CUDA_OR_SKIP();
#ifdef LAWCAT_HAVE_CUDA
  const int64_t T = GENERATE(1, 5, 64, 130);
  const int64_t W = GENERATE(1, 3, 4, 6);
  const int64_t C = GENERATE(64, 20);
  const bool with_cache = GENERATE(false, true);
  const auto dt = GENERATE(at::kFloat, at::kBFloat16);
  CAPTURE(T, W, C, with_cache, dt);
  const int64_t B = 2;
  const at::Tensor x = cuda_of(at::randn({B, T, C}), dt);
  const at::Tensor w = at::randn({C, W}, at::TensorOptions().device(at::kCUDA));
  at::Tensor cache;
  if (with_cache && W > 1) cache = cuda_of(at::randn({B, C, W - 1}), dt);
  const at::Tensor dout = cuda_of(at::randn({B, T, C}), dt);

  lawcat::test::poison_cuda_allocator();
  const at::Tensor out = lawcat::ops::cuda::causal_conv1d_fwd(x, w, cache);
  lawcat::test::poison_cuda_allocator();
  auto [dx, dw, dcache] = lawcat::ops::cuda::causal_conv1d_bwd(x, w, cache, dout);

  at::Tensor xr = f64(x).requires_grad_(), wr = f64(w).requires_grad_(), cr;
  std::optional<at::Tensor> copt;
  if (cache.defined()) copt = cr = f64(cache).requires_grad_();
  const at::Tensor ref = lawcat::ops::ref::causal_conv1d_ref(xr, wr, copt);
  ref.backward(f64(dout));
  const double tol = lawcat::test::tol_for(dt);
  LAWCAT_CHECK_REL("out", out, ref, tol);
  LAWCAT_CHECK_REL("dx", dx, xr.grad(), tol);
  LAWCAT_CHECK_REL("dw", dw, wr.grad(), tol);
  if (cache.defined()) LAWCAT_CHECK_REL("dcache", dcache, cr.grad(), tol);
  CHECK(out.scalar_type() == dt);
  CHECK(dw.scalar_type() == at::kFloat);
#endif
}

TEST_CASE("causal_conv1d CUDA repeat (GQA by indexing) matches the repeated input", "[cuda]") {
  LAWCAT_REQUIRE_CUDA_OR_SKIP();
#ifdef LAWCAT_HAVE_CUDA
  const auto dt = GENERATE(at::kFloat, at::kBFloat16);
  const int64_t B = 2, T = 77, Hkv = 2, rep = 3, hd = 16, W = 4;
  const at::Tensor x = cuda_of(at::randn({B, T, Hkv * hd}), dt);
  const at::Tensor w = at::randn({Hkv * rep * hd, W}, at::TensorOptions().device(at::kCUDA));
  const at::Tensor cache = cuda_of(at::randn({B, Hkv * hd, W - 1}), dt);
  const at::Tensor dout = cuda_of(at::randn({B, T, Hkv * rep * hd}), dt);
  const at::Tensor out = lawcat::ops::cuda::causal_conv1d_fwd(x, w, cache, rep, hd);
  auto [dx, dw, dcache] = lawcat::ops::cuda::causal_conv1d_bwd(x, w, cache, dout, rep, hd);

  at::Tensor xr = f64(x).requires_grad_(), wr = f64(w).requires_grad_(), cr = f64(cache).requires_grad_();
  const at::Tensor xrep = xr.view({B, T, Hkv, 1, hd}).expand({B, T, Hkv, rep, hd}).reshape({B, T, Hkv * rep * hd});
  const at::Tensor crep =
      cr.view({B, Hkv, 1, hd, W - 1}).expand({B, Hkv, rep, hd, W - 1}).reshape({B, Hkv * rep * hd, W - 1});
  const at::Tensor ref = lawcat::ops::ref::causal_conv1d_ref(xrep, wr, crep);
  ref.backward(f64(dout));
  const double tol = lawcat::test::tol_for(dt);
  LAWCAT_CHECK_REL("out", out, ref, tol);
  LAWCAT_CHECK_REL("dx", dx, xr.grad(), tol);
  LAWCAT_CHECK_REL("dw", dw, wr.grad(), tol);
  LAWCAT_CHECK_REL("dcache", dcache, cr.grad(), tol);
#endif
}

TEST_CASE("causal_conv1d CUDA decode step equals the full convolution", "[cuda]") {
  LAWCAT_REQUIRE_CUDA_OR_SKIP();
#ifdef LAWCAT_HAVE_CUDA
  const int64_t W = GENERATE(1, 2, 4);
  const int64_t B = 3, T = 9, C = 40;
  const at::Tensor x = at::randn({B, T, C}, at::TensorOptions().device(at::kCUDA));
  const at::Tensor w = at::randn({C, W}, at::TensorOptions().device(at::kCUDA));
  at::Tensor cache = at::randn({B, C, W - 1}, at::TensorOptions().device(at::kCUDA));
  const at::Tensor ref = lawcat::ops::ref::causal_conv1d_ref(f64(x), f64(w), f64(cache));
  std::vector<at::Tensor> outs;
  for (int64_t t = 0; t < T; ++t)
    outs.push_back(lawcat::ops::cuda::causal_conv1d_step(x.select(1, t), w, cache));
  LAWCAT_CHECK_REL("steps", at::stack(outs, 1), ref, 1e-5);
  // after T steps the cache holds the last W-1 inputs
  if (W > 1) LAWCAT_CHECK_REL("cache", cache, x.narrow(1, T - (W - 1), W - 1).transpose(1, 2), 1e-6);
#endif
}

TEST_CASE("lawcat_prologue_fwd CUDA (conv + feature map + gate) matches ATen in float64", "[cuda][sanitize]") {
  LAWCAT_REQUIRE_CUDA_OR_SKIP();
#ifdef LAWCAT_HAVE_CUDA
  const auto dt = GENERATE(at::kFloat, at::kBFloat16);
  const int64_t D = GENERATE(64, 128);
  CAPTURE(dt, D);
  const int64_t B = 2, T = 150, H = 4, Hkv = 2, R = 16, W = 4;
  auto o = at::TensorOptions().device(at::kCUDA);
  const at::Tensor q = cuda_of(at::randn({B, T, H, D}), dt), k = cuda_of(at::randn({B, T, Hkv, D}), dt);
  const at::Tensor a = cuda_of(at::randn({B, T, R}), dt);
  const at::Tensor cq = at::randn({H * D, W}, o) * 0.5, ck = at::randn({H * D, W}, o) * 0.5;
  const at::Tensor wphi = at::randn({H, D, D / 2}, o) * 0.2, w2 = at::randn({Hkv * D, R}, o) * 0.5;
  const at::Tensor b2 = at::randn({Hkv * D}, o);
  lawcat::test::poison_cuda_allocator();
  auto [fq, fk, g] = lawcat::ops::cuda::lawcat_prologue_fwd(q, k, a, cq, ck, wphi, w2, b2, 16.0);
  auto [phiq_r, phik_r, gr] = lawcat::test::prologue_oracle(q, k, a, cq, ck, wphi, w2, b2);
  const double tol = dt == at::kFloat ? 1e-5 : 1e-2;
  LAWCAT_CHECK_REL("phi_q", fq, phiq_r, tol);
  LAWCAT_CHECK_REL("phi_k", fk, phik_r, tol);
  LAWCAT_CHECK_REL("g", g, gr, tol);
#endif
}
