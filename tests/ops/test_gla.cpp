// chunk_gla / gla_step (CPU path) against the token-by-token recurrence in fp64
// (ops/reference), finite differences, and invariants: chunk sizes agree, decode
// steps agree, two halves with carried state == whole, causality, long-T stability.
#include <ATen/ATen.h>

#include <chrono>
#include <map>
#include <sstream>

#include "common/catch.h"
#include "ops/gla.h"
#include "ops/reference.h"
#include "ops_testing.h"

using namespace lawcat;
using lawcat::test::rel_rms;

namespace {

struct GlaCase {
  int64_t B = 2, T = 64, H = 4, Hkv = 2, F = 8, V = 12;
  bool init = false, normalize = true;
  std::string gates = "typical";  // near0 | typical | neg20 | mixed
  int64_t chunk = 64;
  at::ScalarType dtype = at::kFloat;  // of q, k, v (g and states: fp32, or fp64 with fp64)

  std::string str() const {
    std::ostringstream s;
    s << "B=" << B << " T=" << T << " H=" << H << " Hkv=" << Hkv << " F=" << F << " V=" << V
      << " init=" << init << " normalize=" << normalize << " gates=" << gates << " C=" << chunk
      << " dtype=" << dtype;
    return s.str();
  }
  at::ScalarType state_dtype() const { return dtype == at::kDouble ? at::kDouble : at::kFloat; }
};

// fp64 inputs, already rounded through the dtypes the fast path receives.
struct GlaData {
  at::Tensor q, k, v, g, s0, z0;  // inputs
  at::Tensor dy, dS, dz;          // upstream gradients
};

at::Tensor make_gates(const std::string& kind, at::IntArrayRef shape) {
  const auto o = at::TensorOptions().dtype(at::kDouble);
  if (kind == "near0") return -1e-4 * at::rand(shape, o);  // alpha ~ 0.9999..1
  if (kind == "neg20") return -20.0 + at::rand(shape, o);  // alpha ~ 2e-9..6e-9
  if (kind == "mixed")  // per element either forgets at once or keeps everything
    return at::where(at::rand(shape, o) < 0.5, -20.0 + at::rand(shape, o),
                     -1e-4 * at::rand(shape, o));
  return at::log_sigmoid(2.0 * at::randn(shape, o) + 2.0) / 16.0;  // typical: alpha ~ 0.96..1
}

GlaData make_data(const GlaCase& c, uint64_t seed) {
  at::manual_seed(seed);
  const auto o = at::TensorOptions().dtype(at::kDouble);
  const auto dt = c.dtype, st = c.state_dtype();
  GlaData d;
  // φ outputs are positive (softmax halves): keeps the normalizer well away from 0.
  d.q = test::rounded(at::rand({c.B, c.T, c.H, c.F}, o) + 0.05, dt);
  d.k = test::rounded(at::rand({c.B, c.T, c.H, c.F}, o) + 0.05, dt);
  d.v = test::rounded(at::randn({c.B, c.T, c.Hkv, c.V}, o), dt);
  d.g = test::rounded(make_gates(c.gates, {c.B, c.T, c.Hkv, c.F}), st);
  if (c.init) {
    d.s0 = test::rounded(at::randn({c.B, c.H, c.F, c.V}, o), st);
    d.z0 = test::rounded(2.0 * at::rand({c.B, c.H, c.F}, o) + 0.1, st);
  }
  d.dy = at::randn({c.B, c.T, c.H, c.V}, o);
  d.dS = 0.1 * at::randn({c.B, c.H, c.F, c.V}, o);
  d.dz = 0.1 * at::randn({c.B, c.H, c.F}, o);
  return d;
}

// Outputs and all input gradients of one run.
struct GlaRun {
  at::Tensor y, S, z, dq, dk, dv, dg, ds0, dz0;
};

at::Tensor loss_of(const at::Tensor& y, const at::Tensor& S, const at::Tensor& z,
                   const GlaData& d) {
  return (y.to(at::kDouble) * d.dy).sum() + (S.to(at::kDouble) * d.dS).sum() +
         (z.to(at::kDouble) * d.dz).sum();
}

GlaRun run_reference(const GlaData& d, const GlaCase& c) {
  const auto f64 = at::kDouble;
  at::Tensor q = test::leaf(d.q, f64), k = test::leaf(d.k, f64);
  at::Tensor v = test::leaf(d.v, f64), g = test::leaf(d.g, f64);
  at::Tensor s0, z0;
  if (c.init) {
    s0 = test::leaf(d.s0, f64);
    z0 = test::leaf(d.z0, f64);
  }
  auto [y, S, z] =
      ops::ref::gla_recurrent_ref(q, k, v, g, c.init ? std::optional(s0) : std::nullopt,
                                  c.init ? std::optional(z0) : std::nullopt, c.normalize);
  loss_of(y, S, z, d).backward();
  GlaRun r{y.detach(), S.detach(), z.detach(), q.grad(), k.grad(), v.grad(), g.grad(), {}, {}};
  if (c.init) {
    r.ds0 = s0.grad();
    r.dz0 = z0.grad();
  }
  return r;
}

GlaRun run_chunked(const GlaData& d, const GlaCase& c) {
  at::Tensor q = test::leaf(d.q, c.dtype), k = test::leaf(d.k, c.dtype);
  at::Tensor v = test::leaf(d.v, c.dtype), g = test::leaf(d.g, c.state_dtype());
  at::Tensor s0, z0;
  if (c.init) {
    s0 = test::leaf(d.s0, c.state_dtype());
    z0 = test::leaf(d.z0, c.state_dtype());
  }
  ops::GlaOptions o;
  o.chunk_size = c.chunk;
  o.normalize = c.normalize;
  auto out = ops::chunk_gla(q, k, v, g, c.init ? std::optional(s0) : std::nullopt,
                            c.init ? std::optional(z0) : std::nullopt, o);
  CHECK(out.y.scalar_type() == c.dtype);
  CHECK(out.state.scalar_type() == c.state_dtype());
  loss_of(out.y, out.state, out.normalizer, d).backward();
  GlaRun r{out.y.detach(),
           out.state.detach(),
           out.normalizer.detach(),
           q.grad(),
           k.grad(),
           v.grad(),
           g.grad(),
           {},
           {}};
  CHECK(r.dq.scalar_type() == c.dtype);
  CHECK(r.dg.scalar_type() == c.state_dtype());
  if (c.init) {
    r.ds0 = s0.grad();
    r.dz0 = z0.grad();
  }
  return r;
}

// Largest error seen per (dtype, gates, field), printed at exit with LAWCAT_TEST_VERBOSE.
struct WorstErrors {
  std::map<std::string, double> worst;
  ~WorstErrors() {
    if (!test::verbose()) return;
    for (auto& [k, v] : worst) std::cout << "worst rel RMS " << k << ": " << v << "\n";
  }
  void add(const std::string& key, double e) { worst[key] = std::max(worst[key], e); }
};
WorstErrors g_worst;

// Tolerances on the relative RMS error vs the fp64 recurrence.
struct Tol {
  double fwd, grad, dgate;
};
Tol tolerance(const GlaCase& c) {
  if (c.dtype == at::kDouble) return {1e-10, 1e-10, 1e-9};
  if (c.dtype == at::kFloat) {
    return {2e-6, 5e-5, 5e-6};
  }
  return {2e-2, 2e-2, 2e-2};  // bf16 / fp16 inputs: output and gradients rounded to 8 bits
}

// Relative RMS error with a floor on the reference's RMS:
//  * 1e-30 everywhere: a gradient that decayed below fp32's range (e.g. dz0 behind
//    a run of log a = -20 gates without normalization) is 0 in fp32, ~1e-61 in fp64;
//  * for dq with normalization, the RMS of dv. y_t = q S / (q z) does not change
//    when q_t is scaled, and it hardly depends on q_t at all when the current token
//    dominates (T = 1, log a = -20): then dq is the difference of two O(|dy||v|/|q|)
//    terms that cancel to ~eps. Its rounding error is at the scale of those terms,
//    of which |dv| ~ |dy| is a measure, not at the scale of the tiny result.
double rel_error(const at::Tensor& got, const at::Tensor& want, double floor) {
  const at::Tensor g = got.to(at::kDouble), w = want.to(at::kDouble);
  if (w.numel() == 0) return 0.0;
  const double err = (g - w).pow(2).mean().sqrt().item<double>();
  return err / std::max(w.pow(2).mean().sqrt().item<double>(), floor);
}

void compare(const GlaRun& got, const GlaRun& want, const GlaCase& c) {
  const Tol tol = tolerance(c);
  const double dq_floor = c.normalize ? want.dv.pow(2).mean().sqrt().item<double>() : 0.0;
  std::vector<std::tuple<const char*, at::Tensor, at::Tensor, double, double>> fields = {
      {"y", got.y, want.y, tol.fwd, 0.0},     {"S_T", got.S, want.S, tol.fwd, 0.0},
      {"z_T", got.z, want.z, tol.fwd, 0.0},   {"dq", got.dq, want.dq, tol.grad, dq_floor},
      {"dk", got.dk, want.dk, tol.grad, 0.0}, {"dv", got.dv, want.dv, tol.grad, 0.0},
      {"dg", got.dg, want.dg, tol.dgate, 0.0}};
  if (c.init) {
    fields.emplace_back("ds0", got.ds0, want.ds0, tol.grad, 0.0);
    fields.emplace_back("dz0", got.dz0, want.dz0, tol.grad, 0.0);
  }
  std::ostringstream dt;
  dt << c.dtype;
  for (auto& [name, a, b, t, floor] : fields) {
    REQUIRE(a.defined());
    REQUIRE(a.sizes() == b.sizes());
    const double e = rel_error(a, b, std::max(floor, 1e-30));
    g_worst.add(dt.str() + " " + c.gates + " " + name, e);
    if (test::verbose() && e > t / 10)
      std::cout << c.str() << " " << name << " rel RMS " << e << "\n";
    CAPTURE(name, e, t);
    CHECK(e <= t);
  }
}

void check_against_reference(const GlaCase& c, uint64_t seed) {
  CAPTURE(c.str());
  const GlaData d = make_data(c, seed);
  const auto t0 = std::chrono::steady_clock::now();
  const GlaRun got = run_chunked(d, c);
  const auto t1 = std::chrono::steady_clock::now();
  const GlaRun want = run_reference(d, c);
  const auto t2 = std::chrono::steady_clock::now();
  if (test::verbose())
    std::cout << c.str() << " chunked " << std::chrono::duration<double>(t1 - t0).count()
              << " s, reference " << std::chrono::duration<double>(t2 - t1).count() << " s\n";
  compare(got, want, c);
}

}  // namespace

TEST_CASE("chunk_gla matches the recurrence: T x gates x (GQA, state, normalize)", "[ops][gla]") {
  GlaCase c;
  c.T = GENERATE(1, 7, 63, 64, 65, 129, 300);
  c.gates = GENERATE(as<std::string>(), "near0", "typical", "neg20", "mixed");
  int64_t group = 1;
  std::tie(group, c.init, c.normalize) = GENERATE(table<int64_t, bool, bool>(
      {{1, false, true}, {2, true, true}, {4, true, false}, {2, false, false}}));
  c.H = c.Hkv * group;
  c.dtype = at::kFloat;
  check_against_reference(c, 1000 + c.T * 7 + group * 3 + c.init + 2 * c.normalize);
}

TEST_CASE("chunk_gla matches the recurrence exactly in fp64", "[ops][gla]") {
  GlaCase c;
  c.dtype = at::kDouble;
  c.T = GENERATE(1, 63, 129);
  c.gates = GENERATE(as<std::string>(), "typical", "mixed");
  c.chunk = GENERATE(16, 64);
  int64_t group = 1;
  std::tie(group, c.init, c.normalize) =
      GENERATE(table<int64_t, bool, bool>({{4, true, true}, {2, false, false}}));
  c.H = c.Hkv * group;
  check_against_reference(c, 2000 + c.T + group);
}

TEST_CASE("chunk_gla matches the recurrence for head dims 8..128", "[ops][gla]") {
  GlaCase c;
  c.B = 2;
  c.Hkv = 1;
  const int64_t group = GENERATE(1, 2);
  c.H = group;
  std::tie(c.F, c.V) = GENERATE(table<int64_t, int64_t>({{8, 16}, {32, 24}, {64, 64}, {128, 96}}));
  c.T = GENERATE(1, 70);
  c.init = GENERATE(false, true);
  c.dtype = GENERATE(at::kFloat, at::kBFloat16);
  check_against_reference(c, 3000 + c.F + c.T);
}

TEST_CASE("chunk_gla with bf16 / fp16 inputs stays within 8-bit rounding", "[ops][gla]") {
  GlaCase c;
  c.dtype = GENERATE(at::kBFloat16, at::kHalf);
  c.T = GENERATE(65, 200);
  c.gates = GENERATE(as<std::string>(), "near0", "typical", "mixed");
  c.init = true;
  check_against_reference(c, 4000 + c.T);
}

TEST_CASE("chunk_gla gradients match central finite differences (fp64)", "[ops][gla]") {
  const bool normalize = GENERATE(true, false);
  const std::string gates = GENERATE(as<std::string>(), "typical", "near0");
  CAPTURE(normalize, gates);
  GlaCase c;
  c.B = 1;
  c.T = 5;
  c.H = 2;
  c.Hkv = 1;
  c.F = 3;
  c.V = 2;
  c.init = true;
  c.normalize = normalize;
  c.gates = gates;
  c.chunk = 2;  // two full chunks and a partial one
  c.dtype = at::kDouble;
  GlaData d = make_data(c, 5000 + normalize);
  const GlaRun analytic = run_chunked(d, c);

  ops::GlaOptions o;
  o.chunk_size = c.chunk;
  o.normalize = normalize;
  auto f = [&]() {
    auto r = ops::chunk_gla(d.q, d.k, d.v, d.g, d.s0, d.z0, o);
    return loss_of(r.y, r.state, r.normalizer, d).item<double>();
  };
  const std::vector<std::pair<const char*, std::pair<at::Tensor*, at::Tensor>>> inputs = {
      {"q", {&d.q, analytic.dq}}, {"k", {&d.k, analytic.dk}},    {"v", {&d.v, analytic.dv}},
      {"g", {&d.g, analytic.dg}}, {"s0", {&d.s0, analytic.ds0}}, {"z0", {&d.z0, analytic.dz0}}};
  for (auto& [name, p] : inputs) {
    const at::Tensor numeric = test::numeric_grad(f, *p.first);
    const double e = rel_rms(p.second, numeric);
    CAPTURE(name, e);
    CHECK(e <= 1e-7);
    CHECK(test::max_abs_diff(p.second, numeric) <= 1e-7);
  }
}

TEST_CASE("chunk_gla is independent of the chunk size", "[ops][gla]") {
  GlaCase c;
  c.T = 300;
  c.init = true;
  c.gates = GENERATE(as<std::string>(), "typical", "mixed");
  CAPTURE(c.gates);
  const GlaData d = make_data(c, 6000);
  c.chunk = 64;
  const GlaRun base = run_chunked(d, c);
  for (int64_t C : {1, 16, 32, 128, 512}) {
    c.chunk = C;
    const GlaRun r = run_chunked(d, c);
    CAPTURE(C);
    CHECK(rel_rms(r.y, base.y) <= 1e-5);
    CHECK(rel_rms(r.S, base.S) <= 1e-5);
    CHECK(rel_rms(r.z, base.z) <= 1e-5);
    CHECK(rel_rms(r.dq, base.dq) <= 1e-5);
    CHECK(rel_rms(r.dk, base.dk) <= 1e-5);
    CHECK(rel_rms(r.dv, base.dv) <= 1e-5);
    CHECK(rel_rms(r.dg, base.dg) <= (c.gates == "mixed" ? 2e-3 : 1e-5));
    CHECK(rel_rms(r.ds0, base.ds0) <= 1e-5);
    CHECK(rel_rms(r.dz0, base.dz0) <= 1e-5);
  }
}

TEST_CASE("chunk_gla == step-by-step decoding with gla_step", "[ops][gla]") {
  GlaCase c;
  c.T = 100;
  c.init = GENERATE(false, true);
  c.normalize = GENERATE(true, false);
  c.gates = "mixed";
  c.dtype = GENERATE(at::kFloat, at::kBFloat16);
  CAPTURE(c.str());
  const GlaData d = make_data(c, 7000 + c.init);
  ops::GlaOptions o;
  o.normalize = c.normalize;
  const at::Tensor q = d.q.to(c.dtype), k = d.k.to(c.dtype), v = d.v.to(c.dtype);
  const at::Tensor g = d.g.to(at::kFloat);
  std::optional<at::Tensor> s0, z0;
  if (c.init) {
    s0 = d.s0.to(at::kFloat);
    z0 = d.z0.to(at::kFloat);
  }
  const auto whole = ops::chunk_gla(q, k, v, g, s0, z0, o);

  at::Tensor S = c.init ? s0->clone() : at::zeros({c.B, c.H, c.F, c.V});
  at::Tensor z = c.init ? z0->clone() : at::zeros({c.B, c.H, c.F});
  std::vector<at::Tensor> ys;
  for (int64_t t = 0; t < c.T; ++t)
    ys.push_back(
        ops::gla_step(q.select(1, t), k.select(1, t), v.select(1, t), g.select(1, t), S, z, o));
  const at::Tensor y = at::stack(ys, 1);
  CHECK(y.scalar_type() == c.dtype);
  const double ytol = c.dtype == at::kFloat ? 1e-5 : 1e-2;  // bf16: both rounded to 8 bits
  CHECK(rel_rms(y, whole.y) <= ytol);
  CHECK(rel_rms(S, whole.state) <= 1e-5);
  CHECK(rel_rms(z, whole.normalizer) <= 1e-5);
}

TEST_CASE("chunk_gla: two halves with carried state == whole, gradients included", "[ops][gla]") {
  GlaCase c;
  c.T = 150;
  c.init = true;
  const int64_t split = GENERATE(1, 64, 77);
  CAPTURE(split);
  const GlaData d = make_data(c, 8000);
  const GlaRun whole = run_chunked(d, c);

  const auto f32 = at::kFloat;
  at::Tensor q = test::leaf(d.q, f32), k = test::leaf(d.k, f32);
  at::Tensor v = test::leaf(d.v, f32), g = test::leaf(d.g, f32);
  at::Tensor s0 = test::leaf(d.s0, f32), z0 = test::leaf(d.z0, f32);
  const int64_t rest = c.T - split;
  auto a = ops::chunk_gla(q.narrow(1, 0, split), k.narrow(1, 0, split), v.narrow(1, 0, split),
                          g.narrow(1, 0, split), s0, z0);
  auto b =
      ops::chunk_gla(q.narrow(1, split, rest), k.narrow(1, split, rest), v.narrow(1, split, rest),
                     g.narrow(1, split, rest), a.state, a.normalizer);
  const at::Tensor y = at::cat({a.y, b.y}, 1);
  CHECK(rel_rms(y, whole.y) <= 1e-5);
  CHECK(rel_rms(b.state, whole.S) <= 1e-5);
  CHECK(rel_rms(b.normalizer, whole.z) <= 1e-5);
  loss_of(y, b.state, b.normalizer, d).backward();
  CHECK(rel_rms(q.grad(), whole.dq) <= 1e-5);
  CHECK(rel_rms(k.grad(), whole.dk) <= 1e-5);
  CHECK(rel_rms(v.grad(), whole.dv) <= 1e-5);
  CHECK(rel_rms(g.grad(), whole.dg) <= 1e-5);
  CHECK(rel_rms(s0.grad(), whole.ds0) <= 1e-5);
  CHECK(rel_rms(z0.grad(), whole.dz0) <= 1e-5);
}

TEST_CASE("chunk_gla is causal: future tokens change neither past outputs nor their grads",
          "[ops][gla]") {
  GlaCase c;
  c.T = 130;
  const int64_t t0 = GENERATE(1, 40, 64, 100);
  CAPTURE(t0);
  const GlaData d = make_data(c, 9000);
  GlaData e = d;
  const int64_t n = c.T - t0;
  e.q = d.q.clone();
  e.k = d.k.clone();
  e.v = d.v.clone();
  e.g = d.g.clone();
  e.q.narrow(1, t0, n).uniform_(0.05, 3.0);
  e.k.narrow(1, t0, n).uniform_(0.05, 3.0);
  e.v.narrow(1, t0, n).normal_(0.0, 10.0);
  e.g.narrow(1, t0, n).uniform_(-20.0, 0.0);
  const auto a = ops::chunk_gla(d.q.to(at::kFloat), d.k.to(at::kFloat), d.v.to(at::kFloat),
                                d.g.to(at::kFloat));
  const auto b = ops::chunk_gla(e.q.to(at::kFloat), e.k.to(at::kFloat), e.v.to(at::kFloat),
                                e.g.to(at::kFloat));
  CHECK(at::equal(a.y.narrow(1, 0, t0), b.y.narrow(1, 0, t0)));
  CHECK_FALSE(at::equal(a.y.narrow(1, t0, n), b.y.narrow(1, t0, n)));

  // A loss on the past only gives exactly zero gradient to future inputs.
  const auto f32 = at::kFloat;
  at::Tensor q = test::leaf(d.q, f32), k = test::leaf(d.k, f32);
  at::Tensor v = test::leaf(d.v, f32), g = test::leaf(d.g, f32);
  auto r = ops::chunk_gla(q, k, v, g);
  (r.y.narrow(1, 0, t0).to(at::kDouble) * d.dy.narrow(1, 0, t0)).sum().backward();
  for (const at::Tensor* grad : {&q.grad(), &k.grad(), &v.grad(), &g.grad()})
    CHECK(grad->narrow(1, t0, n).abs().max().item<double>() == 0.0);
  CHECK(v.grad().narrow(1, 0, t0).abs().max().item<double>() > 0.0);
}

TEST_CASE("chunk_gla takes non-contiguous inputs", "[ops][gla]") {
  GlaCase c;
  c.T = 70;
  c.init = true;
  const GlaData d = make_data(c, 10000);
  const GlaRun want = run_chunked(d, c);
  // q, k as transposes of [B, H, T, F] storage; v a slice of a wider tensor; g strided in T.
  at::Tensor q_store = d.q.to(at::kFloat).transpose(1, 2).contiguous().requires_grad_();
  at::Tensor k_store = d.k.to(at::kFloat).transpose(1, 2).contiguous().requires_grad_();
  at::Tensor v_store =
      at::cat({d.v.to(at::kFloat), at::randn({c.B, c.T, c.Hkv, 5})}, 3).requires_grad_();
  at::Tensor g_store = at::stack({d.g.to(at::kFloat), at::zeros_like(d.g, at::kFloat)}, 2)
                           .flatten(1, 2)
                           .requires_grad_();  // [B, 2T, Hkv, F]; g = even rows
  at::Tensor s0 = test::leaf(d.s0, at::kFloat), z0 = test::leaf(d.z0, at::kFloat);
  const at::Tensor q = q_store.transpose(1, 2), k = k_store.transpose(1, 2);
  const at::Tensor v = v_store.narrow(3, 0, c.V);
  const at::Tensor g = g_store.slice(1, 0, 2 * c.T, 2);
  REQUIRE_FALSE(q.is_contiguous());
  REQUIRE_FALSE(v.is_contiguous());
  REQUIRE_FALSE(g.is_contiguous());
  auto r = ops::chunk_gla(q, k, v, g, s0, z0);
  CHECK(rel_rms(r.y, want.y) <= 1e-6);
  CHECK(rel_rms(r.state, want.S) <= 1e-6);
  loss_of(r.y, r.state, r.normalizer, d).backward();
  CHECK(rel_rms(q_store.grad().transpose(1, 2), want.dq) <= 1e-6);
  CHECK(rel_rms(k_store.grad().transpose(1, 2), want.dk) <= 1e-6);
  CHECK(rel_rms(v_store.grad().narrow(3, 0, c.V), want.dv) <= 1e-6);
  CHECK(v_store.grad().narrow(3, c.V, 5).abs().max().item<double>() == 0.0);
  CHECK(rel_rms(g_store.grad().slice(1, 0, 2 * c.T, 2), want.dg) <= 1e-6);
}

TEST_CASE("chunk_gla at T = 32768 with bf16 inputs and extreme gates stays accurate",
          "[ops][gla][long]") {
  GlaCase c;
  c.B = 1;
  c.T = 32768;
  c.H = 2;
  c.Hkv = 2;
  c.F = 8;
  c.V = 8;
  c.init = true;
  c.dtype = at::kBFloat16;
  CAPTURE(c.str());
  GlaData d = make_data(c, 11000);
  // kv head 0: per element either log a = -20 or ~0; kv head 1: log a ~ -1e-4 everywhere,
  // so its state sums ~1e4 tokens.
  d.g.select(2, 0).copy_(test::rounded(make_gates("mixed", {c.B, c.T, c.F}), at::kFloat));
  d.g.select(2, 1).copy_(test::rounded(make_gates("near0", {c.B, c.T, c.F}), at::kFloat));
  const GlaRun got = run_chunked(d, c);
  for (const at::Tensor* t :
       {&got.y, &got.S, &got.z, &got.dq, &got.dk, &got.dv, &got.dg, &got.ds0, &got.dz0})
    CHECK(test::all_finite(*t));

  // Outputs against the fp64 recurrence (forward only, no input records gradients:
  // autograd through 32768 tokens of the oracle takes minutes) ...
  const auto [y_ref, S_ref, z_ref] =
      ops::ref::gla_recurrent_ref(d.q, d.k, d.v, d.g, d.s0, d.z0, c.normalize);
  // ... and gradients against the same chunked algorithm in fp64, which the tests
  // above tie to the oracle's gradients at ~1e-16: what is measured here is the
  // bf16 / fp32 rounding accumulated over a long sequence.
  GlaCase c64 = c;
  c64.dtype = at::kDouble;
  const GlaRun want = run_chunked(d, c64);
  CHECK(rel_rms(want.y, y_ref) <= 1e-10);
  const std::vector<std::tuple<const char*, at::Tensor, at::Tensor>> fields = {
      {"y", got.y, y_ref},     {"S_T", got.S, S_ref},      {"z_T", got.z, z_ref},
      {"dq", got.dq, want.dq}, {"dk", got.dk, want.dk},    {"dv", got.dv, want.dv},
      {"dg", got.dg, want.dg}, {"ds0", got.ds0, want.ds0}, {"dz0", got.dz0, want.dz0}};
  for (auto& [name, a, b] : fields) {
    const double e = rel_rms(a, b);
    if (test::verbose()) std::cout << c.str() << " " << name << " rel RMS " << e << "\n";
    CAPTURE(name, e);
    CHECK(e <= 1e-2);
  }
}

TEST_CASE("chunk_gla and gla_step reject bad shapes naming the tensor", "[ops][gla]") {
  const at::Tensor q = at::rand({2, 5, 4, 8}), v = at::randn({2, 5, 2, 6});
  const at::Tensor g = -at::rand({2, 5, 2, 8});
  auto message = [](auto&& fn) { return test::thrown_message(fn); };
  CHECK(test::contains(
      message([&] {
        ops::chunk_gla(q, q, v.narrow(2, 0, 1).expand({2, 5, 3, 6}), at::zeros({2, 5, 3, 8}));
      }),
      "multiple of kv heads"));
  CHECK(test::contains(message([&] { ops::chunk_gla(q, q.narrow(3, 0, 4), v, g); }), "k "));
  CHECK(test::contains(message([&] { ops::chunk_gla(q, q, v, g.narrow(3, 0, 4)); }), "g must be"));
  CHECK(test::contains(message([&] { ops::chunk_gla(q, q, v.narrow(1, 0, 4), g); }), "v "));
  const at::Tensor S_bad = at::zeros({2, 4, 8, 5}), z0 = at::zeros({2, 4, 8});
  CHECK(test::contains(message([&] { ops::chunk_gla(q, q, v, g, S_bad, z0); }), "initial_state"));
  CHECK(test::contains(message([&] {
                         ops::chunk_gla(q, q, v, g, at::zeros({2, 4, 8, 6}), {});
                       }),
                       "both"));
  ops::GlaOptions bad;
  bad.chunk_size = 0;
  CHECK(test::contains(message([&] { ops::chunk_gla(q, q, v, g, {}, {}, bad); }), "chunk_size"));

  const at::Tensor q1 = q.select(1, 0), v1 = v.select(1, 0), g1 = g.select(1, 0);
  at::Tensor S = at::zeros({2, 4, 8, 6}), z = at::zeros({2, 4, 8});
  at::Tensor S5 = at::zeros({2, 4, 8, 5}), S_half = S.to(at::kHalf);
  CHECK(test::contains(message([&] { ops::gla_step(q1, q1, v1, g1, S5, z); }), "state must be"));
  CHECK(test::contains(message([&] { ops::gla_step(q1, q1, v1, g1, S_half, z); }), "fp32"));
  CHECK_NOTHROW(ops::gla_step(q1, q1, v1, g1, S, z));
}

TEST_CASE("chunk_gla with T = 0 passes the initial state through", "[ops][gla]") {
  const at::Tensor q = at::rand({2, 0, 4, 8}), v = at::randn({2, 0, 2, 6});
  const at::Tensor g = -at::rand({2, 0, 2, 8});
  at::Tensor s0 = at::randn({2, 4, 8, 6}).requires_grad_(), z0 = at::rand({2, 4, 8});
  auto r = ops::chunk_gla(q, q, v, g, s0, z0);
  CHECK(r.y.sizes() == at::IntArrayRef({2, 0, 4, 6}));
  CHECK(at::equal(r.state, s0));
  CHECK(at::equal(r.normalizer, z0));
  r.state.sum().backward();
  CHECK(at::equal(s0.grad(), at::ones_like(s0)));
}
