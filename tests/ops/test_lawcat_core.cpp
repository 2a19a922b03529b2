// ops::lawcat_core off the fused CUDA path (lawcat_core_unfused: separate conv, φ, gate and
// chunked GLA ops, also the fused op's fallback for extreme gates) against autograd through
// the float64 reference chain (ops::ref::lawcat_core_ref: conv -> φ -> gate -> token-by-token recurrence). φ and the gate
// compute in fp32 (as in the model), so the bar is fp32's: 1e-5.
#include <ATen/ATen.h>

#include "common/catch.h"
#include "ops/lawcat_core.h"
#include "ops/ops_testing.h"
#include "ops/reference.h"

namespace ref = lawcat::ops::ref;

TEST_CASE("lawcat_core (unfused) gradients match autograd through the float64 chain", "[ops][lawcat_core]") {
  const bool normalize = GENERATE(true, false);
  const bool with_bias = GENERATE(true, false);
  CAPTURE(normalize, with_bias);
  const int64_t B = 2, T = 70, H = 4, Hkv = 2, D = 8, R = 4, W = 3;
  const auto f64 = at::TensorOptions().dtype(at::kDouble);
  std::vector<at::Tensor> x = {at::randn({B, T, H, D}, f64),       at::randn({B, T, Hkv, D}, f64),
                               at::randn({B, T, Hkv, D}, f64),     at::randn({B, T, R}, f64),
                               at::randn({H * D, W}, f64) * 0.5,   at::randn({H * D, W}, f64) * 0.5,
                               at::randn({H, D, D / 2}, f64) * 0.3, at::randn({Hkv * D, R}, f64) * 0.3,
                               with_bias ? at::randn({Hkv * D}, f64) : at::Tensor()};
  const at::Tensor dy = at::randn({B, T, H, D}, f64);
  std::vector<at::Tensor> a, b;  // two independent leaf sets: the op and the reference
  for (const auto& t : x) {
    a.push_back(t.defined() ? t.clone().requires_grad_(true) : t);
    b.push_back(t.defined() ? t.clone().requires_grad_(true) : t);
  }
  lawcat::ops::LawcatCoreOptions o;
  o.normalize = normalize;
  REQUIRE_FALSE(lawcat::ops::lawcat_core_fused_supported(a[0], W, R));  // CPU: never the fused kernels
  const at::Tensor y = lawcat::ops::lawcat_core(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], o);
  y.backward(dy);

  const at::Tensor yr = ref::lawcat_core_ref(b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], normalize);
  yr.backward(dy);

  CHECK(lawcat::test::rel_rms(y, yr) < 1e-5);
  const char* names[] = {"dq", "dk", "dv", "da", "dconv_q", "dconv_k", "dwphi", "dw2", "db2"};
  for (size_t i = 0; i < a.size(); ++i) {
    if (!a[i].defined()) continue;
    INFO(names[i]);
    REQUIRE(a[i].grad().defined());
    CHECK(lawcat::test::rel_rms(a[i].grad(), b[i].grad()) < 1e-5);
  }
}
