// The oracles themselves, against hand-computed values: a wrong oracle would
// make every other ops test meaningless.
#include <ATen/ATen.h>

#include "common/catch.h"
#include "ops/reference.h"
#include "ops_testing.h"

using namespace lawcat;

TEST_CASE("gla_recurrent_ref follows LAWCAT step 6 on a hand-computed case", "[ops][ref]") {
  // B = 1, T = 2, H = 2 query heads sharing Hkv = 1 kv head, F = 2, V = 1.
  const auto o = at::TensorOptions().dtype(at::kDouble);
  const at::Tensor q = at::tensor({1.0, 2.0, 0.5, 0.5, 3.0, 1.0, 1.0, 1.0}, o).view({1, 2, 2, 2});
  const at::Tensor k = at::tensor({1.0, 0.0, 0.0, 1.0, 2.0, 1.0, 1.0, 3.0}, o).view({1, 2, 2, 2});
  const at::Tensor v = at::tensor({4.0, -2.0}, o).view({1, 2, 1, 1});
  const double a0 = 0.5, a1 = 0.25, b0 = 0.9, b1 = 0.8;  // alpha per step and feature
  const at::Tensor g =
      at::tensor({std::log(a0), std::log(a1), std::log(b0), std::log(b1)}, o).view({1, 2, 1, 2});
  auto [y, S, z] = ops::ref::gla_recurrent_ref(q, k, v, g);
  // head 0: S1 = k v = [4, 0], z1 = [1, 0]; y1 = (1*4 + 2*0) / (1*1 + 0) = 4
  //         S2 = [0.9*4 + 2*-2, 0.8*0 + 1*-2] = [-0.4, -2], z2 = [0.9 + 2, 0 + 1] = [2.9, 1]
  //         y2 = (3*-0.4 + 1*-2) / (3*2.9 + 1*1) = -3.2 / 9.7
  // head 1: S1 = [0, 4], z1 = [0, 1]; y1 = (0.5*4) / (0.5*1) = 4
  //         S2 = [0 + 1*-2, 0.8*4 + 3*-2] = [-2, -2.8], z2 = [1, 0.8 + 3] = [1, 3.8]
  //         y2 = (-2 - 2.8) / (1 + 3.8) = -1
  CHECK(y.sizes() == at::IntArrayRef({1, 2, 2, 1}));
  CHECK(y[0][0][0][0].item<double>() == Approx(4.0));
  CHECK(y[0][1][0][0].item<double>() == Approx(-3.2 / 9.7));
  CHECK(y[0][0][1][0].item<double>() == Approx(4.0));
  CHECK(y[0][1][1][0].item<double>() == Approx(-1.0));
  CHECK(S[0][1][1][0].item<double>() == Approx(-2.8));
  CHECK(z[0][0][0].item<double>() == Approx(2.9));
  // Without normalization y is the numerator.
  auto [yn, Sn, zn] = ops::ref::gla_recurrent_ref(q, k, v, g, std::nullopt, std::nullopt, false);
  CHECK(yn[0][1][0][0].item<double>() == Approx(-3.2));
}

TEST_CASE("causal_conv1d_ref follows LAWCAT step 3 on a hand-computed case", "[ops][ref]") {
  const auto o = at::TensorOptions().dtype(at::kDouble);
  const at::Tensor x = at::tensor({1.0, 2.0, 3.0}, o).view({1, 3, 1});
  const at::Tensor w =
      at::tensor({0.5, -1.0, 2.0}, o).view({1, 3});  // w[:, 2] on the current token
  const at::Tensor out = ops::ref::causal_conv1d_ref(x, w);
  // out_t = 0.5 x_{t-2} - x_{t-1} + 2 x_t
  CHECK(out[0][0][0].item<double>() == Approx(2.0));
  CHECK(out[0][1][0].item<double>() == Approx(-1.0 + 4.0));
  CHECK(out[0][2][0].item<double>() == Approx(0.5 - 2.0 + 6.0));
  const at::Tensor cache = at::tensor({10.0, 20.0}, o).view({1, 1, 2});  // x_{-2}, x_{-1}
  const at::Tensor outc = ops::ref::causal_conv1d_ref(x, w, cache);
  CHECK(outc[0][0][0].item<double>() == Approx(5.0 - 20.0 + 2.0));
  CHECK(outc[0][1][0].item<double>() == Approx(10.0 - 1.0 + 4.0));
}
