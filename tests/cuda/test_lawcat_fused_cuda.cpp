// [cuda] The fused LAWCAT core forward (csrc_kernels/lawcat/fused_fwd.cuh, ops::cuda::lawcat_core_fwd)
// against the float64 chain conv -> φ -> gate -> token-by-token recurrence (ops::ref).
#include <ATen/ATen.h>

#include "common/catch.h"
#include "cuda/cuda_check.h"
#include "ops/cuda_ops.h"
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
