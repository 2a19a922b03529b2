// Helpers for the ops tests: error measures, exact rounding of oracle inputs,
// central finite differences (LibTorch has no gradcheck in C++).
#pragma once
#include <ATen/ATen.h>

#include <cmath>
#include <cstdlib>
#include <exception>
#include <functional>
#include <iostream>
#include <string>

namespace lawcat::test {

// sqrt(mean((got - want)^2)) / sqrt(mean(want^2)), in fp64; the absolute RMS when want is 0.
inline double rel_rms(const at::Tensor& got, const at::Tensor& want) {
  const at::Tensor g = got.detach().to(at::kDouble), w = want.detach().to(at::kDouble);
  if (w.numel() == 0) return 0.0;
  const double err = (g - w).pow(2).mean().sqrt().item<double>();
  const double ref = w.pow(2).mean().sqrt().item<double>();
  return ref > 0 ? err / ref : err;
}

inline double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  if (a.numel() == 0) return 0.0;
  return (a.detach().to(at::kDouble) - b.detach().to(at::kDouble)).abs().max().item<double>();
}

inline bool all_finite(const at::Tensor& t) { return at::isfinite(t.detach()).all().item<bool>(); }

// x rounded through dtype dt, as fp64: the oracle sees exactly what the fast path sees.
inline at::Tensor rounded(const at::Tensor& x, at::ScalarType dt) {
  return x.to(dt).to(at::kDouble);
}

// A fresh leaf copy of x in dtype dt that records gradients (never aliases x, even
// when x already has dtype dt).
inline at::Tensor leaf(const at::Tensor& x, at::ScalarType dt) {
  return x.detach().to(dt, /*non_blocking=*/false, /*copy=*/true).requires_grad_();
}

// d f / d x by central differences, element by element (x: contiguous fp64, modified
// and restored in place; f reads it).
inline at::Tensor numeric_grad(const std::function<double()>& f, at::Tensor& x, double h = 1e-6) {
  at::NoGradGuard no_grad;
  at::Tensor grad = at::zeros_like(x);
  double* px = x.data_ptr<double>();
  double* pg = grad.data_ptr<double>();
  for (int64_t i = 0; i < x.numel(); ++i) {
    const double old = px[i];
    px[i] = old + h;
    const double fp = f();
    px[i] = old - h;
    const double fm = f();
    px[i] = old;
    pg[i] = (fp - fm) / (2 * h);
  }
  return grad;
}

// The message of the exception fn throws ("" when it throws none): Catch2 v2 and v3
// spell their string matchers differently, so tests match on this instead.
template <class Fn>
std::string thrown_message(Fn&& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}
inline bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

// Set LAWCAT_TEST_VERBOSE=1 to print every measured error.
inline bool verbose() {
  static const bool v = std::getenv("LAWCAT_TEST_VERBOSE") != nullptr;
  return v;
}

}  // namespace lawcat::test
