// [cuda] The fused LAWCAT decode step (csrc_kernels/lawcat/decode_step.cu,
// ops::cuda::lawcat_step_fused): T tokens stepped one at a time against the float64 chain
// conv -> φ -> gate -> token-by-token recurrence over the whole sequence (ops::ref), the final
// state and the rolled conv caches included; and ops::lawcat_core_step (which takes the fused
// kernel on CUDA) continuing a prefill against the full forward.
#include <ATen/ATen.h>

#include "common/catch.h"
#include "cuda/cuda_check.h"
#include "ops/cuda_ops.h"
#include "ops/lawcat_core.h"
#include "ops/reference.h"

using lawcat::test::cuda_of;
using lawcat::test::f64;

namespace {
// A layer's LAWCAT parameters, random, fp32 on the GPU (gate biases around +2: slow features).
lawcat::ops::LawcatCoreWeights random_weights(int64_t H, int64_t Hkv, int64_t D, int64_t R, int64_t W, int64_t hidden,
                                              double w1_scale, double w2_scale) {
  auto o = at::TensorOptions().device(at::kCUDA);
  lawcat::ops::LawcatCoreWeights w;
  w.conv_q = at::randn({H * D, W}, o) * 0.5;
  w.conv_k = at::randn({H * D, W}, o) * 0.5;
  w.wphi = at::randn({H, D, D / 2}, o) * 0.2;
  w.w1 = at::randn({R, hidden}, o) * w1_scale;
  w.w2 = at::randn({Hkv * D, R}, o) * w2_scale;
  w.b2 = at::randn({Hkv * D}, o) + 2.0;
  return w;
}
}  // namespace

// W = 1 (no cache), 4 and 8 (the widest); GQA groups 1 and 4; strong gates (b = -300: α ~ 0)
// in a few features; unnormalized too.
TEST_CASE("lawcat_step_fused CUDA: stepping T tokens equals the float64 recurrence", "[cuda][sanitize]") {
  LAWCAT_REQUIRE_CUDA_OR_SKIP();
#ifdef LAWCAT_HAVE_CUDA
  const auto dt = GENERATE(at::kBFloat16, at::kHalf);
  const int64_t D = GENERATE(64, 128);
  const int64_t W = GENERATE(1, 4, 8);
  const int64_t Hkv = GENERATE(1, 2);
  const bool normalize = GENERATE(true, false);
  CAPTURE(dt, D, W, Hkv, normalize);
  const int64_t B = 2, T = 24, H = 4, R = 16;
  auto o = at::TensorOptions().device(at::kCUDA);
  const at::Tensor q = cuda_of(at::randn({B, T, H, D}), dt), k = cuda_of(at::randn({B, T, Hkv, D}), dt);
  const at::Tensor v = cuda_of(at::randn({B, T, Hkv, D}), dt);
  const at::Tensor a = at::randn({B, T, R}, o);  // fp32, as the step computes W1 x
  const at::Tensor cq = at::randn({H * D, W}, o) * 0.5, ck = at::randn({H * D, W}, o) * 0.5;
  const at::Tensor wphi = at::randn({H, D, D / 2}, o) * 0.2, w2 = at::randn({Hkv * D, R}, o) * 0.3;
  at::Tensor b2 = at::randn({Hkv * D}, o);
  b2.view({Hkv, D}).narrow(1, 0, 4).fill_(-300.0);
  REQUIRE(lawcat::ops::cuda::lawcat_step_fused_supported(q, D, W, R));

  lawcat::test::poison_cuda_allocator();
  at::Tensor cache_q, cache_k, S, z;  // created by the first step
  std::vector<at::Tensor> ys;
  for (int64_t t = 0; t < T; ++t) {
    ys.push_back(lawcat::ops::cuda::lawcat_step_fused(
        q.select(1, t).reshape({B, H * D}), k.select(1, t).reshape({B, Hkv * D}), v.select(1, t).reshape({B, Hkv * D}),
        a.select(1, t).contiguous(), cq, ck, cache_q, cache_k, wphi, w2, b2, S, z, 16.0, 1e-10, normalize));
  }
  const at::Tensor y = at::stack(ys, 1);  // [B, T, H, D]

  // The oracle: a (rounded as the kernel reads it) in float64 through the reference prologue.
  auto [phiq, phik, g] = lawcat::test::prologue_oracle(q, k, a, cq, ck, wphi, w2, b2);
  auto [yr, sr, zr] = lawcat::ops::ref::gla_recurrent_ref(phiq, phik, f64(v), g, {}, {}, normalize);
  LAWCAT_CHECK_REL("y", y, yr, 2e-2);
  LAWCAT_CHECK_REL("S_T", S, sr, 2e-2);
  LAWCAT_CHECK_REL("z_T", z, zr, 2e-2);
  if (W > 1) {  // the caches hold the last W - 1 inputs, oldest first (k repeated to its query heads)
    const at::Tensor want_q = q.narrow(1, T - (W - 1), W - 1).reshape({B, W - 1, H * D}).transpose(1, 2);
    const at::Tensor krep =
        k.narrow(1, T - (W - 1), W - 1).unsqueeze(3).expand({B, W - 1, Hkv, H / Hkv, D}).reshape({B, W - 1, H * D});
    CHECK(at::equal(cache_q, want_q.contiguous()));
    CHECK(at::equal(cache_k, krep.transpose(1, 2).contiguous()));
  }
  // An unsupported request is refused naming it.
  CHECK_FALSE(lawcat::ops::cuda::lawcat_step_fused_supported(q.to(at::kFloat), D, W, R));
  CHECK_FALSE(lawcat::ops::cuda::lawcat_step_fused_supported(q, 96, W, R));
#endif
}

// The op the model calls: a prefill (fused forward) of T0 tokens, then single-token steps
// (the fused step kernel) against the stateless forward over all T tokens.
TEST_CASE("lawcat_core_step on CUDA continues a prefill as the full forward does", "[cuda]") {
  LAWCAT_REQUIRE_CUDA_OR_SKIP();
#ifdef LAWCAT_HAVE_CUDA
  const int64_t D = GENERATE(64, 128);
  CAPTURE(D);
  const int64_t B = 2, T0 = 70, T = 80, H = 4, Hkv = 2, R = 16, W = 4, hidden = 96;
  at::NoGradGuard no_grad;
  const auto dt = at::kBFloat16;
  const lawcat::ops::LawcatCoreWeights w = random_weights(H, Hkv, D, R, W, hidden, 0.2, 0.3);
  lawcat::ops::LawcatCoreInputs all;
  all.x = cuda_of(at::randn({B, T, hidden}), dt);
  all.q = cuda_of(at::randn({B, T, H * D}), dt);
  all.k = cuda_of(at::randn({B, T, Hkv * D}), dt);
  all.v = cuda_of(at::randn({B, T, Hkv * D}), dt);
  const lawcat::ops::LawcatCoreOptions opt;
  const at::Tensor want = lawcat::ops::lawcat_core(all, w, opt);  // [B, T, H, D]
  auto part = [&](int64_t t0, int64_t n) {
    lawcat::ops::LawcatCoreInputs in;
    in.x = all.x.narrow(1, t0, n), in.q = all.q.narrow(1, t0, n), in.k = all.k.narrow(1, t0, n);
    in.v = all.v.narrow(1, t0, n);
    return in;
  };
  lawcat::ops::LawcatCoreState st;
  std::vector<at::Tensor> ys{lawcat::ops::lawcat_core(part(0, T0), w, opt, &st)};
  for (int64_t t = T0; t < T; ++t) ys.push_back(lawcat::ops::lawcat_core_step(part(t, 1), w, opt, st));
  CHECK(st.seen == T);
  const at::Tensor got = at::cat(ys, 1);
  LAWCAT_CHECK_REL("steps after the prefill", got.narrow(1, T0, T - T0), want.narrow(1, T0, T - T0), 2e-2);
#endif
}

// Against the separate ops the fused step replaces (lawcat_features + gla_step, the path with
// LAWCAT_NO_FUSED_STEP=1), token by token with each path's own state; the largest gate rank the
// kernel takes (128) and 8 query heads per kv head.
TEST_CASE("lawcat_step_fused CUDA equals the separate ops' step (rank 128, 8 query heads per kv head)", "[cuda]") {
  LAWCAT_REQUIRE_CUDA_OR_SKIP();
#ifdef LAWCAT_HAVE_CUDA
  const int64_t D = GENERATE(64, 128);
  CAPTURE(D);
  const int64_t B = 2, T = 16, H = 8, Hkv = 1, R = 128, W = 4, hidden = 64;
  at::NoGradGuard no_grad;
  auto o = at::TensorOptions().device(at::kCUDA);
  const auto dt = at::kBFloat16;
  const lawcat::ops::LawcatCoreWeights w = random_weights(H, Hkv, D, R, W, hidden, 0.1, 0.1);
  const lawcat::ops::LawcatCoreOptions opt;
  const at::Tensor x = cuda_of(at::randn({B, T, hidden}), dt), q = cuda_of(at::randn({B, T, H * D}), dt);
  const at::Tensor k = cuda_of(at::randn({B, T, Hkv * D}), dt), v = cuda_of(at::randn({B, T, Hkv * D}), dt);
  lawcat::ops::LawcatCoreState fused, separate;
  at::Tensor S, z;
  for (int64_t t = 0; t < T; ++t) {
    lawcat::ops::LawcatCoreInputs in;
    in.x = x.narrow(1, t, 1), in.q = q.narrow(1, t, 1), in.k = k.narrow(1, t, 1), in.v = v.narrow(1, t, 1);
    REQUIRE(lawcat::ops::cuda::lawcat_step_fused_supported(in.q, D, W, R));
    const at::Tensor a = at::linear(in.x.select(1, 0).to(at::kFloat), w.w1);
    const at::Tensor yf = lawcat::ops::cuda::lawcat_step_fused(
        in.q.select(1, 0), in.k.select(1, 0), in.v.select(1, 0), a, w.conv_q, w.conv_k, fused.conv_q_cache,
        fused.conv_k_cache, w.wphi, w.w2, w.b2, fused.S, fused.z, opt.tau, opt.eps, opt.normalize);
    const lawcat::ops::LawcatFeatures f = lawcat::ops::lawcat_features(in, w, opt, &separate);
    if (!S.defined()) S = at::zeros({B, H, D, D}, o), z = at::zeros({B, H, D}, o);
    lawcat::ops::GlaOptions go;
    const at::Tensor ys = lawcat::ops::gla_step(f.phiq.select(1, 0), f.phik.select(1, 0), f.v.select(1, 0),
                                                f.g.select(1, 0), S, z, go);
    CAPTURE(t);
    LAWCAT_CHECK_REL("y", yf, ys, 1e-2);
  }
  LAWCAT_CHECK_REL("S", fused.S, S, 1e-2);
  LAWCAT_CHECK_REL("z", fused.z, z, 1e-2);
  CHECK(at::equal(fused.conv_q_cache, separate.conv_q_cache));
  CHECK(at::equal(fused.conv_k_cache, separate.conv_k_cache));
#endif
}
