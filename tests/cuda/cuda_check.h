// Helpers for the [cuda] tests: relative errors against float64 oracles, and NaN
// poisoning of the CUDA caching allocator so that any output element a kernel fails
// to write shows up as NaN.
#pragma once
#include <ATen/ATen.h>

#include <tuple>

#ifdef LAWCAT_HAVE_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#endif

#include "common/catch.h"
#include "ops/reference.h"

namespace lawcat::test {

// ||a - b|| / ||b|| in float64 (NaN if a holds a NaN).
inline double rel_err(const at::Tensor& a, const at::Tensor& b) {
  const at::Tensor x = a.detach().to(at::kCPU, at::kDouble), y = b.detach().to(at::kCPU, at::kDouble);
  const double den = y.norm().item<double>();
  return (x - y).norm().item<double>() / (den > 0 ? den : 1.0);
}

inline bool all_finite(const at::Tensor& t) { return at::isfinite(t.detach()).all().item<bool>(); }

// A host tensor on the GPU in dtype dt; a (GPU) tensor as a float64 CPU oracle input.
inline at::Tensor cuda_of(const at::Tensor& t, at::ScalarType dt) { return t.to(at::kCUDA, dt); }
inline at::Tensor f64(const at::Tensor& t) { return t.detach().to(at::kCPU, at::kDouble); }

// Fill the allocator's free memory with NaN: allocate a large NaN tensor and free it,
// so the next allocations (carved from that block) start out as NaN.
inline void poison_cuda_allocator(int64_t bytes = int64_t(512) << 20) {
#ifdef LAWCAT_HAVE_CUDA
  c10::cuda::CUDACachingAllocator::emptyCache();
  at::Tensor p = at::full({bytes / 4}, std::numeric_limits<float>::quiet_NaN(),
                          at::TensorOptions().device(at::kCUDA).dtype(at::kFloat));
  p.reset();
#endif
}

// float64 oracle of the LAWCAT prologue (ops::ref::lawcat_prologue_ref on float64 CPU copies):
// q [B, T, H, D], k [B, T, Hkv, D], a [B, T, R], conv_q / conv_k [H*D, W], wphi [H, D, D/2],
// w2 [Hkv*D, R], b2 [Hkv*D] -> (φ(conv q), φ(conv k) [B, T, H, D], log-gate [B, T, Hkv, D]).
inline std::tuple<at::Tensor, at::Tensor, at::Tensor> prologue_oracle(const at::Tensor& q, const at::Tensor& k,
                                                                      const at::Tensor& a, const at::Tensor& cq,
                                                                      const at::Tensor& ck, const at::Tensor& wphi,
                                                                      const at::Tensor& w2, const at::Tensor& b2) {
  return ops::ref::lawcat_prologue_ref(f64(q), f64(k), f64(a), f64(cq), f64(ck), f64(wphi), f64(w2), f64(b2));
}

// Tolerance on relative error for inputs of this dtype (issue 4 acceptance).
inline double tol_for(at::ScalarType t) { return t == at::kFloat ? 1e-5 : 1e-2; }

}  // namespace lawcat::test

// Check a relative error with the case printed on failure.
#define LAWCAT_CHECK_REL(name, got, want, tol)                                   \
  do {                                                                           \
    const double lawcat_e_ = ::lawcat::test::rel_err((got), (want));             \
    INFO(name << " rel err " << lawcat_e_ << " (tol " << (tol) << ")");          \
    CHECK(::lawcat::test::all_finite(got));                                      \
    CHECK(lawcat_e_ <= (tol));                                                   \
  } while (0)
