// causal_conv1d (CPU path) against the direct definition in fp64 (ops/reference),
// finite differences, decode steps == parallel, cache contents, dtype rule.
#include <ATen/ATen.h>

#include <sstream>

#include "common/catch.h"
#include "ops/conv1d.h"
#include "ops/reference.h"
#include "ops_testing.h"

using namespace lawcat;
using lawcat::test::rel_rms;

namespace {

struct ConvRun {
  at::Tensor out, dx, dw, dcache;
};

// x [B, T, C], w [C, W], cache [B, C, W-1] or undefined (all fp64), run in (xdt, wdt).
ConvRun run_conv(const at::Tensor& x64, const at::Tensor& w64, const at::Tensor& cache64,
                 const at::Tensor& dout, at::ScalarType xdt, at::ScalarType wdt, bool ref) {
  at::Tensor x = test::leaf(x64, ref ? at::kDouble : xdt);
  at::Tensor w = test::leaf(w64, ref ? at::kDouble : wdt);
  at::Tensor cache;
  if (cache64.defined()) cache = test::leaf(cache64, ref ? at::kDouble : xdt);
  const std::optional<at::Tensor> c =
      cache.defined() ? std::optional<at::Tensor>(cache) : std::nullopt;
  const at::Tensor out = ref ? ops::ref::causal_conv1d_ref(x, w, c) : ops::causal_conv1d(x, w, c);
  (out.to(at::kDouble) * dout).sum().backward();
  ConvRun r{out.detach(), x.grad(), w.grad(), cache.defined() ? cache.grad() : at::Tensor()};
  return r;
}

}  // namespace

TEST_CASE("causal_conv1d matches the definition: widths 1..8, dtypes, cache", "[ops][conv1d]") {
  const int64_t W = GENERATE(range(1, 9));
  const int64_t T = GENERATE(1, 5, 33);
  const bool with_cache = GENERATE(false, true);
  const auto xdt = GENERATE(at::kFloat, at::kBFloat16, at::kDouble);
  const auto wdt = xdt == at::kDouble ? at::kDouble : at::kFloat;  // fp32 filters on bf16 x
  const int64_t B = 2, C = 6;
  std::ostringstream desc;
  desc << "W=" << W << " T=" << T << " cache=" << with_cache << " x=" << xdt << " w=" << wdt;
  CAPTURE(desc.str());
  at::manual_seed(100 + W * 10 + T);
  const auto o = at::TensorOptions().dtype(at::kDouble);
  const at::Tensor x = test::rounded(at::randn({B, T, C}, o), xdt);
  const at::Tensor w = test::rounded(at::randn({C, W}, o), wdt);
  const at::Tensor cache =
      with_cache ? test::rounded(at::randn({B, C, W - 1}, o), xdt) : at::Tensor();
  const at::Tensor dout = at::randn({B, T, C}, o);
  const ConvRun got = run_conv(x, w, cache, dout, xdt, wdt, false);
  const ConvRun want = run_conv(x, w, cache, dout, xdt, wdt, true);
  CHECK(got.out.scalar_type() == xdt);
  CHECK(got.dx.scalar_type() == xdt);
  CHECK(got.dw.scalar_type() == wdt);
  // fp32 accumulation; with bf16 x, out and dx are rounded to 8 bits, and so is the
  // upstream gradient autograd hands back for a bf16 output (hence dw too).
  const double tol = xdt == at::kDouble ? 1e-12 : xdt == at::kFloat ? 1e-6 : 1e-2;
  CHECK(rel_rms(got.out, want.out) <= tol);
  CHECK(rel_rms(got.dx, want.dx) <= tol);
  CHECK(rel_rms(got.dw, want.dw) <= tol);
  if (with_cache) {
    REQUIRE(got.dcache.defined());
    CHECK(got.dcache.scalar_type() == xdt);
    CHECK(rel_rms(got.dcache, want.dcache) <= tol);
  }
}

TEST_CASE("causal_conv1d gradients match central finite differences (fp64)", "[ops][conv1d]") {
  const int64_t W = GENERATE(1, 2, 4);
  CAPTURE(W);
  at::manual_seed(200 + W);
  const int64_t B = 2, T = 5, C = 3;
  at::Tensor x = at::randn({B, T, C}, at::kDouble);
  at::Tensor w = at::randn({C, W}, at::kDouble);
  at::Tensor cache = at::randn({B, C, W - 1}, at::kDouble);
  const at::Tensor dout = at::randn({B, T, C}, at::kDouble);
  const ConvRun analytic = run_conv(x, w, cache, dout, at::kDouble, at::kDouble, false);
  auto f = [&]() { return (ops::causal_conv1d(x, w, cache) * dout).sum().item<double>(); };
  CHECK(test::max_abs_diff(analytic.dx, test::numeric_grad(f, x)) <= 1e-8);
  CHECK(test::max_abs_diff(analytic.dw, test::numeric_grad(f, w)) <= 1e-8);
  if (W > 1) CHECK(test::max_abs_diff(analytic.dcache, test::numeric_grad(f, cache)) <= 1e-8);
}

TEST_CASE("causal_conv1d: decode steps == parallel, cache == last inputs", "[ops][conv1d]") {
  const int64_t W = GENERATE(1, 2, 4, 7);
  const auto xdt = GENERATE(at::kFloat, at::kBFloat16);
  const int64_t prefix = GENERATE(0, 2, 9);  // tokens before decoding (fewer than W-1 too)
  CAPTURE(W, xdt, prefix);
  at::manual_seed(300 + W + prefix);
  const int64_t B = 2, T = 12, C = 5;
  const at::Tensor x = at::randn({B, T, C}).to(xdt);
  const at::Tensor w = at::randn({C, W});
  const at::Tensor full = ops::causal_conv1d(x, w);

  at::Tensor cache = ops::causal_conv1d_cache(x.narrow(1, 0, prefix), W);
  REQUIRE(cache.sizes() == at::IntArrayRef({B, C, W - 1}));
  CHECK(cache.scalar_type() == xdt);
  // The prefill's outputs and cache continue exactly into the streamed part.
  const at::Tensor cont = ops::causal_conv1d(x.narrow(1, prefix, T - prefix), w, cache);
  CHECK(at::equal(cont, full.narrow(1, prefix, T - prefix)));
  for (int64_t t = prefix; t < T; ++t) {
    const at::Tensor y = ops::causal_conv1d_step(x.select(1, t), w, cache);
    CAPTURE(t);
    CHECK(y.scalar_type() == xdt);
    CHECK(rel_rms(y, full.select(1, t)) <= (xdt == at::kFloat ? 1e-6 : 1e-2));
  }
  // After the stream, the rolled cache equals the cache of the whole sequence.
  CHECK(at::equal(cache, ops::causal_conv1d_cache(x, W)));
  // And the cache of a continuation, seeded with an initial cache.
  const at::Tensor head = ops::causal_conv1d_cache(x.narrow(1, 0, prefix), W);
  CHECK(at::equal(ops::causal_conv1d_cache(x.narrow(1, prefix, T - prefix), W, head),
                  ops::causal_conv1d_cache(x, W)));
}

TEST_CASE("causal_conv1d takes non-contiguous inputs", "[ops][conv1d]") {
  at::manual_seed(400);
  const int64_t B = 2, T = 9, C = 4, W = 4;
  at::Tensor x_store = at::randn({B, C, T}).requires_grad_();  // x = transpose: [B, T, C]
  at::Tensor w_store = at::randn({W, C}).requires_grad_();     // w = transpose: [C, W]
  const at::Tensor x = x_store.transpose(1, 2), w = w_store.t();
  REQUIRE_FALSE(x.is_contiguous());
  const at::Tensor dout = at::randn({B, T, C});
  (ops::causal_conv1d(x, w) * dout).sum().backward();
  const ConvRun want = run_conv(x.detach().to(at::kDouble), w.detach().to(at::kDouble),
                                at::Tensor(), dout.to(at::kDouble), at::kDouble, at::kDouble, true);
  CHECK(rel_rms(ops::causal_conv1d(x, w), want.out) <= 1e-6);
  CHECK(rel_rms(x_store.grad().transpose(1, 2), want.dx) <= 1e-6);
  CHECK(rel_rms(w_store.grad().t(), want.dw) <= 1e-6);
}

TEST_CASE("causal_conv1d rejects bad shapes naming the tensor", "[ops][conv1d]") {
  const at::Tensor x = at::randn({2, 5, 4}), w = at::randn({4, 3});
  auto message = [](auto&& fn) { return test::thrown_message(fn); };
  CHECK(test::contains(message([&] {
                         ops::causal_conv1d(x, at::randn({3, 4}));
                       }),
                       "w must be [C, W]"));
  CHECK(test::contains(message([&] { ops::causal_conv1d(x, at::randn({4, 0})); }), "W >= 1"));
  CHECK(test::contains(message([&] {
                         ops::causal_conv1d(x, w, at::zeros({2, 4, 3}));
                       }),
                       "initial_cache must be"));
  CHECK(test::contains(message([&] { ops::causal_conv1d(x.select(1, 0), w); }),
                       "x must be [B, T, C]"));
  at::Tensor cache = at::zeros({2, 4, 1});
  CHECK(test::contains(message([&] { ops::causal_conv1d_step(x.select(1, 0), w, cache); }),
                       "cache must be"));
}

TEST_CASE("causal_conv1d with T = 0 gives an empty output and keeps the cache", "[ops][conv1d]") {
  const at::Tensor x = at::randn({2, 0, 4}), w = at::randn({4, 3});
  const at::Tensor cache = at::randn({2, 4, 2});
  CHECK(ops::causal_conv1d(x, w, cache).sizes() == at::IntArrayRef({2, 0, 4}));
  CHECK(at::equal(ops::causal_conv1d_cache(x, 3, cache), cache));
}
