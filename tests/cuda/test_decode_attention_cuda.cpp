// [cuda] ops::static_cache_attention (csrc_kernels/attention/decode_attention.cu): one query
// token over a static KV cache whose valid length is on the device, against softmax attention
// in float64 over the valid keys only; lengths inside one split, on a split boundary, across
// many splits and the whole capacity; the keys past the length (poisoned with NaN) never read.
#include <ATen/ATen.h>

#include <cmath>

#include "common/catch.h"
#include "cuda/cuda_check.h"
#include "ops/decode_attention.h"

using lawcat::test::cuda_of;
using lawcat::test::f64;

TEST_CASE("static_cache_attention CUDA equals float64 softmax attention over the valid keys", "[cuda][sanitize]") {
  LAWCAT_REQUIRE_CUDA_OR_SKIP();
  const auto dt = GENERATE(at::kBFloat16, at::kHalf);
  const int64_t D = GENERATE(64, 128);
  const int64_t G = GENERATE(1, 4, 8);
  CAPTURE(dt, D, G);
  const int64_t B = 2, Hkv = 3, cap = 1100;
  const at::Tensor q = cuda_of(at::randn({B, Hkv, G, D}), dt);
  at::Tensor k = cuda_of(at::randn({B, Hkv, cap, D}) * 2, dt), v = cuda_of(at::randn({B, Hkv, cap, D}), dt);
  REQUIRE(lawcat::ops::static_cache_attention_supported(q, k));
  for (int64_t pos : {0L, 100L, 255L, 256L, 700L, cap - 1}) {
    CAPTURE(pos);
    const int64_t n = pos + 1;
    at::Tensor kp = k.clone(), vp = v.clone();  // keys past the length hold NaN: must not be read
    if (n < cap) {
      kp.narrow(2, n, cap - n).fill_(NAN);
      vp.narrow(2, n, cap - n).fill_(NAN);
    }
    const at::Tensor position = at::full({1}, pos, at::TensorOptions().dtype(at::kLong).device(at::kCUDA));
    const at::Tensor y = lawcat::ops::static_cache_attention(q, kp, vp, position);
    const at::Tensor kv = f64(k.narrow(2, 0, n)), vv = f64(v.narrow(2, 0, n));
    const at::Tensor p = at::softmax(at::matmul(f64(q), kv.transpose(-1, -2)) / std::sqrt(double(D)), -1);
    const at::Tensor want = at::matmul(p, vv);
    CHECK(y.sizes() == want.sizes());
    CHECK(y.scalar_type() == dt);
    LAWCAT_CHECK_REL("y", y, want, 1e-2);
  }
  // unsupported inputs are refused
  CHECK_FALSE(lawcat::ops::static_cache_attention_supported(q.to(at::kFloat), k.to(at::kFloat)));
  CHECK_FALSE(lawcat::ops::static_cache_attention_supported(cuda_of(at::randn({B, Hkv, 9, D}), dt), k));
  CHECK_FALSE(lawcat::ops::static_cache_attention_supported(q.cpu(), k.cpu()));
}
