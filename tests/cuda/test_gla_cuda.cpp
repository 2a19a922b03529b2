// [cuda] chunked normalized GLA kernels vs the float64 token-by-token oracle
// (ops::ref::gla_recurrent_ref; gradients by autograd through it). Fresh random inputs
// per case, outputs NaN-poisoned, T not a multiple of the chunk, GQA, B > 1, initial
// state on/off, many segments (combine pass), packed sequences == separate runs, the
// decode step, and chunked-with-carried-state == whole.
#include <ATen/ATen.h>

#include "common/catch.h"
#include "cuda/cuda_check.h"
#include "ops/cuda_ops.h"
#include "ops/reference.h"

#ifdef LAWCAT_HAVE_CUDA
namespace {
using lawcat::ops::GlaOptions;
namespace cu = lawcat::ops::cuda;

at::Tensor f64(const at::Tensor& t) { return t.detach().to(at::kCPU, at::kDouble); }

struct GlaCase {
  at::Tensor q, k, v, g, s0, z0;  // CUDA; q, k, v in dtype; g, s0, z0 fp32
};

// φ-like positive features (rows sum to ~2 as two softmax halves would), log-gates spread
// from ~-0.003 (alpha ~ 1) to ~-30 (alpha ~ 0), a few exactly 0.
GlaCase make_case(int64_t B, int64_t T, int64_t H, int64_t Hkv, int64_t F, int64_t V, at::ScalarType dt, bool state) {
  auto o = at::TensorOptions().device(at::kCUDA);
  GlaCase c;
  c.q = (at::softmax(at::randn({B, T, H, F}, o) * 2, -1) * 2).to(dt);
  c.k = (at::softmax(at::randn({B, T, H, F}, o) * 2, -1) * 2).to(dt);
  c.v = at::randn({B, T, Hkv, V}, o).to(dt);
  c.g = -at::exp(at::randn({B, T, Hkv, F}, o) * 2.0 - 1.5);
  c.g.masked_fill_(at::rand({B, T, Hkv, F}, o) < 0.05, 0.0);
  if (state) {
    c.s0 = at::randn({B, H, F, V}, o);
    c.z0 = at::rand({B, H, F}, o) * 2;
  }
  return c;
}

std::optional<at::Tensor> opt(const at::Tensor& t) {
  return t.defined() ? std::optional<at::Tensor>(t) : std::nullopt;
}
}  // namespace
#endif

TEST_CASE("chunk_gla CUDA forward + backward match the float64 recurrence", "[cuda]") {
  LAWCAT_REQUIRE_CUDA_OR_SKIP();
#ifdef LAWCAT_HAVE_CUDA
  const int64_t T = GENERATE(1, 63, 64, 129, 300);
  const int64_t D = GENERATE(64, 128);
  const auto dt = GENERATE(at::kFloat, at::kBFloat16);
  const bool state = GENERATE(false, true);
  CAPTURE(T, D, dt, state);
  const int64_t B = 2, H = 4, Hkv = 2;
  GlaCase c = make_case(B, T, H, Hkv, D, D, dt, state);
  GlaOptions o;
  lawcat::test::poison_cuda_allocator();
  auto [y, ST, zT] = cu::chunk_gla_fwd(c.q, c.k, c.v, c.g, c.s0, c.z0, o);

  const auto dy = at::randn({B, T, H, D}, c.q.options()).to(dt);
  const auto dST = at::randn({B, H, D, D}, c.g.options());
  const auto dzT = at::randn({B, H, D}, c.g.options());
  lawcat::test::poison_cuda_allocator();
  auto [dq, dk, dv, dg, ds0, dz0] = cu::chunk_gla_bwd(c.q, c.k, c.v, c.g, c.s0, c.z0, dy, dST, dzT, o);

  at::Tensor q = f64(c.q).requires_grad_(), k = f64(c.k).requires_grad_(), v = f64(c.v).requires_grad_(),
             g = f64(c.g).requires_grad_(), s0, z0;
  if (state) {
    s0 = f64(c.s0).requires_grad_();
    z0 = f64(c.z0).requires_grad_();
  }
  auto [yr, STr, zTr] = lawcat::ops::ref::gla_recurrent_ref(q, k, v, g, opt(s0), opt(z0), true, 1e-10);
  const at::Tensor loss = (yr * f64(dy)).sum() + (STr * f64(dST)).sum() + (zTr * f64(dzT)).sum();
  loss.backward();

  const double tol = lawcat::test::tol_for(dt);
  LAWCAT_CHECK_REL("y", y, yr, tol);
  LAWCAT_CHECK_REL("S_T", ST, STr, tol);
  LAWCAT_CHECK_REL("z_T", zT, zTr, tol);
  // One token and no initial state: y = v (q.k) / (q.k + eps) does not depend on q (the exact
  // dq and the intra part of dk are ~eps). What a kernel returns there is rounding noise of
  // the numerator / denominator divided by q.k: tiny in fp32, O(1) with bf16 operands. So
  // that case checks dq only in fp32 (absolute) and dk only in fp32 (its state part is real).
  const bool degenerate = T == 1 && !state;
  if (degenerate) {
    if (dt == at::kFloat) CHECK(dq.abs().max().item<double>() < 1e-3);
  } else {
    LAWCAT_CHECK_REL("dq", dq, q.grad(), tol);
  }
  if (!degenerate || dt == at::kFloat) LAWCAT_CHECK_REL("dk", dk, k.grad(), tol);
  LAWCAT_CHECK_REL("dv", dv, v.grad(), tol);
  LAWCAT_CHECK_REL("dg", dg, g.grad(), tol);
  if (state) {
    LAWCAT_CHECK_REL("ds0", ds0, s0.grad(), tol);
    LAWCAT_CHECK_REL("dz0", dz0, z0.grad(), tol);
  }
  CHECK(y.scalar_type() == dt);
  CHECK(dq.scalar_type() == dt);
  CHECK(dg.scalar_type() == at::kFloat);
#endif
}

TEST_CASE("chunk_gla CUDA: fp16, odd head dims (padded), unnormalized, long T with many segments", "[cuda]") {
  LAWCAT_REQUIRE_CUDA_OR_SKIP();
#ifdef LAWCAT_HAVE_CUDA
  struct Shape { int64_t B, T, H, Hkv, F, V; at::ScalarType dt; bool normalize; };
  const Shape s = GENERATE(Shape{1, 2000, 4, 1, 64, 64, at::kBFloat16, true},   // ~66 segments per head
                           Shape{1, 1000, 2, 2, 128, 128, at::kFloat, true},
                           Shape{2, 200, 4, 2, 48, 40, at::kHalf, true},       // F, V padded to 64
                           Shape{1, 150, 2, 1, 100, 128, at::kBFloat16, true}, // F padded to 128
                           Shape{2, 130, 4, 2, 64, 64, at::kFloat, false});
  CAPTURE(s.B, s.T, s.H, s.Hkv, s.F, s.V, s.dt, s.normalize);
  GlaCase c = make_case(s.B, s.T, s.H, s.Hkv, s.F, s.V, s.dt, true);
  GlaOptions o;
  o.normalize = s.normalize;
  lawcat::test::poison_cuda_allocator();
  auto [y, ST, zT] = cu::chunk_gla_fwd(c.q, c.k, c.v, c.g, c.s0, c.z0, o);
  const auto dy = at::randn({s.B, s.T, s.H, s.V}, c.q.options()).to(s.dt);
  const auto dST = at::randn({s.B, s.H, s.F, s.V}, c.g.options());
  lawcat::test::poison_cuda_allocator();
  auto [dq, dk, dv, dg, ds0, dz0] = cu::chunk_gla_bwd(c.q, c.k, c.v, c.g, c.s0, c.z0, dy, dST, at::Tensor(), o);

  at::Tensor q = f64(c.q).requires_grad_(), k = f64(c.k).requires_grad_(), v = f64(c.v).requires_grad_(),
             g = f64(c.g).requires_grad_(), s0 = f64(c.s0).requires_grad_(), z0 = f64(c.z0).requires_grad_();
  auto [yr, STr, zTr] = lawcat::ops::ref::gla_recurrent_ref(q, k, v, g, s0, z0, s.normalize, 1e-10);
  ((yr * f64(dy)).sum() + (STr * f64(dST)).sum()).backward();
  const double tol = s.dt == at::kFloat ? 1e-5 : 1e-2;
  LAWCAT_CHECK_REL("y", y, yr, tol);
  LAWCAT_CHECK_REL("S_T", ST, STr, tol);
  LAWCAT_CHECK_REL("z_T", zT, zTr, tol);
  LAWCAT_CHECK_REL("dq", dq, q.grad(), tol);
  LAWCAT_CHECK_REL("dk", dk, k.grad(), tol);
  LAWCAT_CHECK_REL("dv", dv, v.grad(), tol);
  LAWCAT_CHECK_REL("dg", dg, g.grad(), tol);
  LAWCAT_CHECK_REL("ds0", ds0, s0.grad(), tol);
  if (s.normalize) LAWCAT_CHECK_REL("dz0", dz0, z0.grad(), tol);
#endif
}

TEST_CASE("chunk_gla CUDA packed sequences (cu_seqlens) equal separate runs", "[cuda]") {
  LAWCAT_REQUIRE_CUDA_OR_SKIP();
#ifdef LAWCAT_HAVE_CUDA
  const auto dt = GENERATE(at::kFloat, at::kBFloat16);
  const int64_t D = GENERATE(64, 128);
  CAPTURE(dt, D);
  const std::vector<int64_t> lens = {37, 128, 0, 201, 1, 64};
  int64_t total = 0;
  std::vector<int64_t> cu = {0};
  for (int64_t l : lens) cu.push_back(total += l);
  const int64_t N = static_cast<int64_t>(lens.size()), H = 4, Hkv = 2;
  GlaCase c = make_case(1, total, H, Hkv, D, D, dt, false);
  auto o32 = c.g.options();
  const at::Tensor s0 = at::randn({N, H, D, D}, o32), z0 = at::rand({N, H, D}, o32);
  const at::Tensor cu_t = at::tensor(cu, at::kLong);
  const at::Tensor dy = at::randn({1, total, H, D}, c.q.options()).to(dt);
  const at::Tensor dST = at::randn({N, H, D, D}, o32), dzT = at::randn({N, H, D}, o32);
  GlaOptions o;
  lawcat::test::poison_cuda_allocator();
  auto [y, ST, zT] = cu::chunk_gla_fwd_varlen(c.q, c.k, c.v, c.g, s0, z0, cu_t, o);
  lawcat::test::poison_cuda_allocator();
  auto [dq, dk, dv, dg, ds0, dz0] = cu::chunk_gla_bwd_varlen(c.q, c.k, c.v, c.g, s0, z0, dy, dST, dzT, cu_t, o);
  const double tol = lawcat::test::tol_for(dt);
  for (int64_t n = 0; n < N; ++n) {
    CAPTURE(n, lens[n]);
    auto sl = [&](const at::Tensor& t) { return t.narrow(1, cu[n], lens[n]); };
    const at::Tensor s0n = s0.narrow(0, n, 1), z0n = z0.narrow(0, n, 1);
    auto [ys, STs, zTs] = cu::chunk_gla_fwd(sl(c.q), sl(c.k), sl(c.v), sl(c.g), s0n, z0n, o);
    if (lens[n] > 0) LAWCAT_CHECK_REL("y", sl(y), ys, 1e-6);
    LAWCAT_CHECK_REL("S_T", ST.narrow(0, n, 1), STs, 1e-6);
    LAWCAT_CHECK_REL("z_T", zT.narrow(0, n, 1), zTs, 1e-6);
    if (lens[n] > 0) {
      auto [dqs, dks, dvs, dgs, ds0s, dz0s] = cu::chunk_gla_bwd(sl(c.q), sl(c.k), sl(c.v), sl(c.g), s0n, z0n, sl(dy),
                                                                dST.narrow(0, n, 1), dzT.narrow(0, n, 1), o);
      LAWCAT_CHECK_REL("dq", sl(dq), dqs, 1e-5);
      LAWCAT_CHECK_REL("dk", sl(dk), dks, 1e-5);
      LAWCAT_CHECK_REL("dv", sl(dv), dvs, 1e-5);
      LAWCAT_CHECK_REL("dg", sl(dg), dgs, 1e-5);
      LAWCAT_CHECK_REL("ds0", ds0.narrow(0, n, 1), ds0s, 1e-5);
      LAWCAT_CHECK_REL("dz0", dz0.narrow(0, n, 1), dz0s, 1e-5);
    } else {  // empty sequence: final state = initial state, ds0 = dS_T
      LAWCAT_CHECK_REL("ds0 (empty)", ds0.narrow(0, n, 1), dST.narrow(0, n, 1), 1e-7);
    }
    // and against the oracle directly
    if (lens[n] > 0) {
      auto [yr, STr, zTr] = lawcat::ops::ref::gla_recurrent_ref(f64(sl(c.q)), f64(sl(c.k)), f64(sl(c.v)),
                                                                f64(sl(c.g)), f64(s0n), f64(z0n), true, 1e-10);
      LAWCAT_CHECK_REL("y vs oracle", sl(y), yr, tol);
      LAWCAT_CHECK_REL("S_T vs oracle", ST.narrow(0, n, 1), STr, tol);
    }
  }
#endif
}

TEST_CASE("gla_step CUDA decode == recurrence; chunked halves with carried state == whole", "[cuda]") {
  LAWCAT_REQUIRE_CUDA_OR_SKIP();
#ifdef LAWCAT_HAVE_CUDA
  const auto dt = GENERATE(at::kFloat, at::kBFloat16);
  const int64_t B = 2, T = 150, H = 4, Hkv = 2, D = 64;
  GlaCase c = make_case(B, T, H, Hkv, D, D, dt, true);
  GlaOptions o;
  auto [yr, STr, zTr] = lawcat::ops::ref::gla_recurrent_ref(f64(c.q), f64(c.k), f64(c.v), f64(c.g), f64(c.s0),
                                                            f64(c.z0), true, 1e-10);
  // decode: prefill the first 100 tokens chunked, then 50 steps
  const int64_t T1 = 100;
  auto sl = [&](const at::Tensor& t, int64_t a, int64_t n) { return t.narrow(1, a, n); };
  auto [y1, S1, z1] = cu::chunk_gla_fwd(sl(c.q, 0, T1), sl(c.k, 0, T1), sl(c.v, 0, T1), sl(c.g, 0, T1), c.s0, c.z0, o);
  at::Tensor S = S1.clone(), z = z1.clone();
  std::vector<at::Tensor> ys;
  for (int64_t t = T1; t < T; ++t)
    ys.push_back(cu::gla_step(c.q.select(1, t), c.k.select(1, t), c.v.select(1, t), c.g.select(1, t), S, z, o));
  const double tol = lawcat::test::tol_for(dt);
  LAWCAT_CHECK_REL("prefill y", y1, sl(yr, 0, T1), tol);
  LAWCAT_CHECK_REL("decode y", at::stack(ys, 1), sl(yr, T1, T - T1), tol);
  LAWCAT_CHECK_REL("decode S", S, STr, tol);
  LAWCAT_CHECK_REL("decode z", z, zTr, tol);
  // two chunked halves (split inside a chunk) == whole
  auto [y2, S2, z2] = cu::chunk_gla_fwd(sl(c.q, T1, T - T1), sl(c.k, T1, T - T1), sl(c.v, T1, T - T1),
                                        sl(c.g, T1, T - T1), S1, z1, o);
  LAWCAT_CHECK_REL("halves y", at::cat({y1, y2}, 1), yr, tol);
  LAWCAT_CHECK_REL("halves S", S2, STr, tol);
#endif
}

// Small shapes for compute-sanitizer (memcheck, racecheck): every kernel once, with a
// loose check that results stay finite and close to the oracle.
TEST_CASE("CUDA kernels on small shapes (compute-sanitizer target)", "[cuda][sanitize]") {
  LAWCAT_REQUIRE_CUDA_OR_SKIP();
#ifdef LAWCAT_HAVE_CUDA
  const auto dt = GENERATE(at::kBFloat16, at::kFloat);
  const int64_t D = GENERATE(64, 128);
  CAPTURE(dt, D);
  const int64_t B = 2, T = 100, H = 2, Hkv = 1;
  GlaCase c = make_case(B, T, H, Hkv, D, D, dt, true);
  GlaOptions o;
  auto [y, ST, zT] = cu::chunk_gla_fwd(c.q, c.k, c.v, c.g, c.s0, c.z0, o);
  const auto dy = at::randn({B, T, H, D}, c.q.options()).to(dt);
  auto [dq, dk, dv, dg, ds0, dz0] = cu::chunk_gla_bwd(c.q, c.k, c.v, c.g, c.s0, c.z0, dy, ST, zT, o);
  const at::Tensor cu_t = at::tensor(std::vector<int64_t>{0, 30, 30, 100}, at::kLong);
  auto flat = [&](const at::Tensor& t) { return t.narrow(0, 0, 1); };
  auto [yv, STv, zTv] = cu::chunk_gla_fwd_varlen(flat(c.q), flat(c.k), flat(c.v), flat(c.g), at::Tensor(),
                                                 at::Tensor(), cu_t, o);
  auto gv = cu::chunk_gla_bwd_varlen(flat(c.q), flat(c.k), flat(c.v), flat(c.g), at::Tensor(), at::Tensor(),
                                     flat(dy), at::Tensor(), at::Tensor(), cu_t, o);
  at::Tensor S = ST.clone(), z = zT.clone();
  const at::Tensor ys = cu::gla_step(c.q.select(1, 0), c.k.select(1, 0), c.v.select(1, 0), c.g.select(1, 0), S, z, o);
  auto [yr, STr, zTr] = lawcat::ops::ref::gla_recurrent_ref(f64(c.q), f64(c.k), f64(c.v), f64(c.g), f64(c.s0),
                                                            f64(c.z0), true, 1e-10);
  LAWCAT_CHECK_REL("y", y, yr, 2e-2);
  for (const at::Tensor& t : {dq, dk, dv, dg, ds0, dz0, yv, STv, std::get<0>(gv), std::get<3>(gv), ys})
    CHECK(lawcat::test::all_finite(t));
  const at::Tensor x = at::randn({B, 70, 24}, c.q.options()).to(dt);
  const at::Tensor w = at::randn({24, 4}, c.g.options());
  at::Tensor cache = at::randn({B, 24, 3}, c.q.options()).to(dt);
  const at::Tensor out = cu::causal_conv1d_fwd(x, w, cache);
  auto [dx, dw, dc] = cu::causal_conv1d_bwd(x, w, cache, at::randn_like(out));
  const at::Tensor os = cu::causal_conv1d_step(x.select(1, 0), w, cache);
  for (const at::Tensor& t : {out, dx, dw, dc, os}) CHECK(lawcat::test::all_finite(t));
#endif
}
