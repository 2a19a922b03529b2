// [cuda] ops::static_cache_attention (csrc_kernels/attention/decode_attention.cu): one query
// token over a static KV cache whose valid length is on the device, against softmax attention
// in float64 over the valid keys only; lengths inside one split, on a split boundary, across
// many splits and the whole capacity; the keys past the length (poisoned with NaN) never read.
#include <ATen/ATen.h>

#include <cmath>

#ifdef LAWCAT_HAVE_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#endif

#include "common/catch.h"
#include "cuda/cuda_check.h"
#include "ops/decode_attention.h"

using lawcat::test::cuda_of;
using lawcat::test::f64;

namespace {
// softmax(q k^T / sqrt(D)) v over keys 0..n-1, in float64
at::Tensor attention_ref(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t n) {
  const at::Tensor kv = f64(k.narrow(2, 0, n)), vv = f64(v.narrow(2, 0, n));
  const at::Tensor p = at::softmax(at::matmul(f64(q), kv.transpose(-1, -2)) / std::sqrt(double(q.size(-1))), -1);
  return at::matmul(p, vv);
}
}  // namespace

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
    const at::Tensor want = attention_ref(q, k, v, n);
    CHECK(y.sizes() == want.sizes());
    CHECK(y.scalar_type() == dt);
    LAWCAT_CHECK_REL("y", y, want, 1e-2);
  }
  // unsupported inputs are refused
  CHECK_FALSE(lawcat::ops::static_cache_attention_supported(q.to(at::kFloat), k.to(at::kFloat)));
  CHECK_FALSE(lawcat::ops::static_cache_attention_supported(cuda_of(at::randn({B, Hkv, 9, D}), dt), k));
  CHECK_FALSE(lawcat::ops::static_cache_attention_supported(q.cpu(), k.cpu()));
}

// The graph decode's use: captured once, replayed with the position advanced on the device only.
// A binding that read the position on the host would replay the captured length.
TEST_CASE("static_cache_attention CUDA: one captured graph serves every position", "[cuda]") {
  LAWCAT_REQUIRE_CUDA_OR_SKIP();
#ifdef LAWCAT_HAVE_CUDA
  const int64_t B = 1, Hkv = 2, G = 4, D = 64, cap = 900;
  const at::Tensor q = cuda_of(at::randn({B, Hkv, G, D}), at::kBFloat16);
  const at::Tensor k = cuda_of(at::randn({B, Hkv, cap, D}) * 2, at::kBFloat16);
  const at::Tensor v = cuda_of(at::randn({B, Hkv, cap, D}), at::kBFloat16);
  const at::Tensor position = at::full({1}, 10, at::TensorOptions().dtype(at::kLong).device(at::kCUDA));
  const at::cuda::CUDAStream side = at::cuda::getStreamFromPool();
  at::cuda::CUDAGraph graph;
  at::Tensor y;
  {
    c10::cuda::CUDAStreamGuard guard(side);
    y = lawcat::ops::static_cache_attention(q, k, v, position);  // warm-up outside the capture
    side.synchronize();
    graph.capture_begin();
    y = lawcat::ops::static_cache_attention(q, k, v, position);
    graph.capture_end();
  }
  for (int64_t pos : {10L, 11L, 300L, 511L, 512L, cap - 1}) {
    CAPTURE(pos);
    position.fill_(pos);
    at::cuda::getCurrentCUDAStream().synchronize();
    graph.replay();
    at::cuda::getCurrentCUDAStream().synchronize();
    LAWCAT_CHECK_REL("y", y, attention_ref(q, k, v, pos + 1), 1e-2);
  }
#endif
}
