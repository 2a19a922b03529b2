// [cuda] The fused LAWCAT core forward (csrc_kernels/lawcat/fused_fwd.cuh, ops::cuda::lawcat_core_fwd)
// against the float64 chain conv -> φ -> gate -> token-by-token recurrence (ops::ref).
#include <ATen/ATen.h>

#include "common/catch.h"
#include "cuda/cuda_check.h"
#include "ops/cuda_ops.h"
#include "ops/lawcat_core.h"
#include "ops/reference.h"

using lawcat::test::cuda_of;
using lawcat::test::f64;

// Strong gates force the exact element-wise path in some chunks; T = 200 leaves a
// partial last chunk; W = 6 takes the 8-tap variant.
TEST_CASE("lawcat_core_fwd CUDA (fused conv + feature map + gate + GLA) matches float64", "[cuda][sanitize]") {
  LAWCAT_REQUIRE_CUDA_OR_SKIP();
#ifdef LAWCAT_HAVE_CUDA
  const auto dt = GENERATE(at::kBFloat16, at::kHalf);
  const int64_t D = GENERATE(64, 128);
  const int64_t W = GENERATE(4, 6);
  const double strong = GENERATE(0.0, -300.0);
  CAPTURE(dt, D, W, strong);
  const int64_t B = 2, T = 200, H = 4, Hkv = 2, R = 16;
  auto o = at::TensorOptions().device(at::kCUDA);
  const at::Tensor q = cuda_of(at::randn({B, T, H, D}), dt), k = cuda_of(at::randn({B, T, Hkv, D}), dt);
  const at::Tensor v = cuda_of(at::randn({B, T, Hkv, D}), dt), a = cuda_of(at::randn({B, T, R}), dt);
  const at::Tensor cq = at::randn({H * D, W}, o) * 0.5, ck = at::randn({H * D, W}, o) * 0.5;
  const at::Tensor wphi = at::randn({H, D, D / 2}, o) * 0.2, w2 = at::randn({Hkv * D, R}, o) * 0.3;
  at::Tensor b2 = at::randn({Hkv * D}, o);
  if (strong != 0.0) b2.view({Hkv, D}).narrow(1, 0, 4).fill_(strong);
  REQUIRE(lawcat::ops::cuda::lawcat_core_fwd_supported(q, W, R));
  lawcat::test::poison_cuda_allocator();
  auto [y, sT, zT] = lawcat::ops::cuda::lawcat_core_fwd(q, k, v, a, cq, ck, wphi, w2, b2, 16.0, 1e-10, true);
  auto [phiq, phik, g] = lawcat::test::prologue_oracle(q, k, a, cq, ck, wphi, w2, b2);
  auto [yr, sr, zr] = lawcat::ops::ref::gla_recurrent_ref(phiq, phik, f64(v), g);
  CHECK(lawcat::test::all_finite(y));
  LAWCAT_CHECK_REL("y", y, yr, 1e-2);
  LAWCAT_CHECK_REL("S_T", sT, sr, 1e-2);
  LAWCAT_CHECK_REL("z_T", zT, zr, 1e-2);
  // an unsupported configuration is refused with a message naming it
  CHECK_FALSE(lawcat::ops::cuda::lawcat_core_fwd_supported(q.to(at::kFloat), W, R));
#endif
}

// The fused training op (fused forward saving chunk states + fused backward) against autograd
// through the float64 chain. T = 200 / 1000: a partial last chunk and several segments per
// sequence (dstate pass + reverse combine); strong gates take the unfused fallback.
TEST_CASE("lawcat_core fused backward matches float64 autograd", "[cuda]") {
  LAWCAT_REQUIRE_CUDA_OR_SKIP();
#ifdef LAWCAT_HAVE_CUDA
  namespace ref = lawcat::ops::ref;
  const auto dt = GENERATE(at::kBFloat16, at::kHalf);
  const int64_t W = GENERATE(4, 6);
  const int64_t T = GENERATE(200, 1000);
  const double strong = GENERATE(0.0, -300.0);
  const bool normalize = GENERATE(true, false);
  const int64_t D = GENERATE(64, 128);  // 128: two CTAs per (segment, head), one per half of v
  // (the float64 reference is slow, ~30 s at T = 1000: the long case once, the unnormalized
  // case once per dtype and head dim)
  if (T != 200 && (dt != at::kBFloat16 || W != 4 || strong != 0.0 || !normalize || D != 64)) return;
  if (!normalize && (W != 4 || strong != 0.0)) return;
  CAPTURE(dt, W, T, strong, normalize, D);
  const int64_t B = 2, H = 4, Hkv = 2, R = 16;
  auto o = at::TensorOptions().device(at::kCUDA);
  at::Tensor q = cuda_of(at::randn({B, T, H, D}), dt), k = cuda_of(at::randn({B, T, Hkv, D}), dt);
  at::Tensor v = cuda_of(at::randn({B, T, Hkv, D}), dt), a = cuda_of(at::randn({B, T, R}), dt);
  at::Tensor cq = at::randn({H * D, W}, o) * 0.5, ck = at::randn({H * D, W}, o) * 0.5;
  at::Tensor wphi = at::randn({H, D, D / 2}, o) * 0.2, w2 = at::randn({Hkv * D, R}, o) * 0.3;
  at::Tensor b2 = at::randn({Hkv * D}, o);
  if (strong != 0.0) b2.view({Hkv, D}).narrow(1, 0, 4).fill_(strong);
  const at::Tensor dy = cuda_of(at::randn({B, T, H, D}), dt);
  std::vector<at::Tensor> leaves = {q, k, v, a, cq, ck, wphi, w2, b2};
  for (auto& l : leaves) l.requires_grad_(true);
  REQUIRE(lawcat::ops::lawcat_core_fused_supported(q, W, R));
  lawcat::test::poison_cuda_allocator();
  lawcat::ops::LawcatCoreOptions co;
  co.normalize = normalize;
  const at::Tensor y = lawcat::ops::lawcat_core(q, k, v, a, cq, ck, wphi, w2, b2, co);
  y.backward(dy);

  std::vector<at::Tensor> d;  // float64 CPU leaves
  for (const auto& l : leaves) d.push_back(f64(l).requires_grad_(true));
  const at::Tensor yr = ref::lawcat_core_ref(d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7], d[8], normalize);
  yr.backward(f64(dy));
  LAWCAT_CHECK_REL("y", y, yr, 1e-2);
  const char* names[] = {"dq", "dk", "dv", "da", "dconv_q", "dconv_k", "dwphi", "dw2", "db2"};
  for (size_t i = 0; i < leaves.size(); ++i) {
    REQUIRE(leaves[i].grad().defined());
    LAWCAT_CHECK_REL(names[i], leaves[i].grad(), d[i].grad(), 1e-2);
  }
#endif
}

// A small case of the fused backward for compute-sanitizer (memcheck / racecheck): three
// segments, a partial last chunk.
TEST_CASE("lawcat_core fused backward on a small case (sanitizer)", "[cuda][sanitize]") {
  LAWCAT_REQUIRE_CUDA_OR_SKIP();
#ifdef LAWCAT_HAVE_CUDA
  const int64_t D = GENERATE(64, 128);
  const int64_t B = 1, T = 130, H = 2, Hkv = 1, R = 16, W = 4;
  auto o = at::TensorOptions().device(at::kCUDA);
  const auto dt = at::kBFloat16;
  at::Tensor q = cuda_of(at::randn({B, T, H, D}), dt), k = cuda_of(at::randn({B, T, Hkv, D}), dt);
  at::Tensor v = cuda_of(at::randn({B, T, Hkv, D}), dt), a = cuda_of(at::randn({B, T, R}), dt);
  at::Tensor cq = at::randn({H * D, W}, o) * 0.5, ck = at::randn({H * D, W}, o) * 0.5;
  at::Tensor wphi = at::randn({H, D, D / 2}, o) * 0.2, w2 = at::randn({Hkv * D, R}, o) * 0.3, b2 = at::randn({Hkv * D}, o);
  std::vector<at::Tensor> leaves = {q, k, v, a, cq, ck, wphi, w2, b2};
  for (auto& l : leaves) l.requires_grad_(true);
  const at::Tensor y = lawcat::ops::lawcat_core(q, k, v, a, cq, ck, wphi, w2, b2);
  y.backward(cuda_of(at::randn({B, T, H, D}), dt));
  for (const auto& l : leaves) CHECK(lawcat::test::all_finite(l.grad()));
#endif
}
