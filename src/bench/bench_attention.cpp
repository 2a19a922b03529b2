// LAWCAT attention core vs RoPE + SDPA, timed with CUDA events (see bench_attention.h).
//
// Core, per layer (docs/architecture.md, "The LAWCAT layer", steps 2-6), bf16
// activations, fp32 filters / gate math:
//   q̃ = conv(q) [B, T, H*d];  k̃ = conv(k) with the kv head indexed per query head
//   φ(u) = [softmax(u W); softmax(-u W)] (W [H, d, d/2] shared by q and k), clamp 1e-12
//   g = logsigmoid(a W2^T + b) / 16   [B, T, Hkv, d] fp32
//   y = chunk_gla(φq, φk, v, g)       (normalized)
// Forward (no grad, as in prefill): one fused kernel for the whole core (conv, φ, gate and
// GLA: ops::cuda::lawcat_core_fwd); shapes it does not support take the fused prologue
// kernel (conv + φ + gate) then the GLA forward. Forward + backward (training): the fused op
// ops::lawcat_core (fused forward saving the chunk states, fused backward) where it applies
// (head dim 64); otherwise the public ops ops::causal_conv1d (GQA-indexed k) and ops::chunk_gla
// on the csrc_kernels kernels, φ and the gate as ATen ops (their backward through autograd).
#include "bench/bench_attention.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <stdexcept>

#ifdef LAWCAT_HAVE_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDACachingAllocator.h>

#include "ops/conv1d.h"
#include "ops/cuda_ops.h"
#include "ops/gla.h"
#include "ops/lawcat_core.h"
#include "util/stats.h"
#endif

namespace lawcat::bench {

#ifndef LAWCAT_HAVE_CUDA
BenchAttentionResult bench_attention(const BenchAttentionOptions&) {
  throw std::runtime_error("bench attention: lawcat was built without the CUDA kernels");
}
#else
namespace {

struct Shape {
  std::string name;
  int64_t H, Hkv, d;
};
Shape shape_of(const std::string& name, int64_t heads) {
  if (heads < 4 || heads % 4 != 0)
    throw std::runtime_error("bench attention: --heads " + std::to_string(heads) + " must be a multiple of 4 (Hkv = H / 4)");
  if (name == "1B") return {"1B", heads, heads / 4, 64};
  if (name == "7B") return {"7B", heads, heads / 4, 128};
  throw std::runtime_error("bench attention: unknown shape '" + name + "' (1B or 7B)");
}

struct Params {  // LAWCAT trainable parameters of one layer
  at::Tensor conv_q, conv_k;  // [H*d, W] fp32
  at::Tensor wphi;            // [H, d, d/2] bf16
  at::Tensor w2, b2;          // [Hkv*d, r] bf16, [Hkv*d] bf16
};

struct Inputs {
  at::Tensor q, k, v, a, dy;  // [B, T, H, d], [B, T, Hkv, d] x2, [B, T, r], [B, T, H, d]
};

at::Tensor feature_map(const at::Tensor& u, const at::Tensor& wphi) {  // u [B, T, H, d] -> [B, T, H, d]
  const at::Tensor s = at::einsum("bthd,hdf->bthf", {u, wphi});
  return at::cat({at::softmax(s, -1), at::softmax(-s, -1)}, -1).clamp_min(1e-12);
}

at::Tensor gate(const at::Tensor& a, const Params& P, int64_t Hkv, int64_t d) {
  const at::Tensor x = at::linear(a, P.w2, P.b2).to(at::kFloat);
  return (at::log_sigmoid(x) / 16.0).view({a.size(0), a.size(1), Hkv, d});
}

at::Tensor lawcat_core(const Inputs& in, const Params& P, const Shape& s) {
  const int64_t B = in.q.size(0), T = in.q.size(1);
  if (!at::GradMode::is_enabled()) {  // prefill / inference: one fused kernel (conv, φ, gate, GLA)
    if (ops::cuda::lawcat_core_fwd_supported(in.q, P.conv_q.size(1), in.a.size(2)))
      return std::get<0>(
          ops::cuda::lawcat_core_fwd(in.q, in.k, in.v, in.a, P.conv_q, P.conv_k, P.wphi, P.w2, P.b2));
    auto [fq, fk, g] = ops::cuda::lawcat_prologue_fwd(in.q, in.k, in.a, P.conv_q, P.conv_k, P.wphi, P.w2, P.b2);
    return std::get<0>(ops::cuda::chunk_gla_fwd(fq, fk, in.v, g, at::Tensor(), at::Tensor(), ops::GlaOptions{}));
  }
  if (ops::lawcat_core_fused_supported(in.q, P.conv_q.size(1), in.a.size(2)))  // fused forward + backward
    return ops::lawcat_core(in.q, in.k, in.v, in.a, P.conv_q, P.conv_k, P.wphi, P.w2, P.b2);
  const at::Tensor qc = ops::causal_conv1d(in.q.reshape({B, T, s.H * s.d}), P.conv_q).view({B, T, s.H, s.d});
  const at::Tensor kc =
      ops::causal_conv1d(in.k.reshape({B, T, s.Hkv * s.d}), P.conv_k, s.H / s.Hkv, s.d).view({B, T, s.H, s.d});
  const at::Tensor g = gate(in.a, P, s.Hkv, s.d);
  return ops::chunk_gla(feature_map(qc, P.wphi), feature_map(kc, P.wphi), in.v, g).y;
}

at::Tensor rope(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {  // x [B, h, T, d]
  const int64_t half = x.size(-1) / 2;
  const at::Tensor rot = at::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
  return x * cos + rot * sin;
}

at::Tensor sdpa_core(const Inputs& in, const at::Tensor& cos, const at::Tensor& sin, const Shape& s) {
  const at::Tensor q = rope(in.q.transpose(1, 2), cos, sin);
  const at::Tensor k = rope(in.k.transpose(1, 2), cos, sin).repeat_interleave(s.H / s.Hkv, 1);
  const at::Tensor v = in.v.transpose(1, 2).repeat_interleave(s.H / s.Hkv, 1);
  return at::scaled_dot_product_attention(q, k, v, {}, 0.0, /*is_causal=*/true);
}

struct Timing {
  double ms, peak_mib;
};

// Median event time of fn(i) over reps after warm-up; peak allocator memory above the
// memory in use before the first call.
Timing time_it(const std::function<void(int)>& fn, int warmup, int reps) {
  auto stream = at::cuda::getCurrentCUDAStream();
  const int dev = at::cuda::current_device();
  for (int i = 0; i < warmup; ++i) fn(i);
  stream.synchronize();
  auto& alloc = *c10::cuda::CUDACachingAllocator::get();
  const int64_t base = alloc.getDeviceStats(dev).allocated_bytes[0].current;
  alloc.resetPeakStats(dev);
  std::vector<float> ts;
  for (int i = 0; i < reps; ++i) {
    at::cuda::CUDAEvent start(cudaEventDefault), stop(cudaEventDefault);
    start.record(stream);
    fn(warmup + i);
    stop.record(stream);
    stop.synchronize();
    ts.push_back(start.elapsed_time(stop));
  }
  const int64_t peak = alloc.getDeviceStats(dev).allocated_bytes[0].peak;
  return {stats::median(std::vector<double>(ts.begin(), ts.end())), double(peak - base) / (1024.0 * 1024.0)};
}

double measure_copy_gbps() {
  auto o = at::TensorOptions().device(at::kCUDA).dtype(at::kByte);
  at::Tensor a = at::randint(0, 255, {int64_t(1) << 30}, o), b = at::empty_like(a);
  const Timing t = time_it([&](int) { b.copy_(a); }, 3, 10);
  return 2.0 * double(a.numel()) / (t.ms * 1e-3) / 1e9;
}

constexpr int kSets = 3;  // rotate among fresh random input sets (defeats L2 reuse at short T)

// One layer's LAWCAT parameters near their initialization: conv taps ~ identity, Wφ ~ the
// rectangular identity, a small gate.
Params make_params(const Shape& s, int64_t W, int64_t r) {
  const auto bf16 = at::TensorOptions().device(at::kCUDA).dtype(at::kBFloat16);
  const auto f32 = at::TensorOptions().device(at::kCUDA).dtype(at::kFloat);
  Params P;
  P.conv_q = at::full({s.H * s.d, W}, 0.001, f32);
  P.conv_q.select(1, W - 1).fill_(1.0);
  P.conv_q.add_(at::randn_like(P.conv_q) * 0.01);
  P.conv_k = P.conv_q.clone();
  P.wphi = (at::eye(s.d, s.d / 2, f32).unsqueeze(0).repeat({s.H, 1, 1}) + at::randn({s.H, s.d, s.d / 2}, f32) * 0.05)
               .to(at::kBFloat16);
  P.w2 = (at::randn({s.Hkv * s.d, r}, f32) * 0.006).to(at::kBFloat16);
  P.b2 = at::zeros({s.Hkv * s.d}, bf16);
  return P;
}

std::vector<Inputs> make_inputs(const Shape& s, int64_t B, int64_t T, int64_t r) {
  const auto bf16 = at::TensorOptions().device(at::kCUDA).dtype(at::kBFloat16);
  std::vector<Inputs> sets(kSets);
  for (auto& in : sets) {
    in.q = at::randn({B, T, s.H, s.d}, bf16);
    in.k = at::randn({B, T, s.Hkv, s.d}, bf16);
    in.v = at::randn({B, T, s.Hkv, s.d}, bf16);
    in.a = at::randn({B, T, r}, bf16);
    in.dy = at::randn({B, T, s.H, s.d}, bf16);
  }
  return sets;
}

// The core's forward + backward, parameters and inputs requiring grad for the timing only.
Timing time_core_fwdbwd(Params& P, std::vector<Inputs>& sets, const Shape& s, int warmup, int reps) {
  std::vector<at::Tensor> params = {P.conv_q, P.conv_k, P.wphi, P.w2, P.b2};
  for (auto& p : params) p.requires_grad_(true);
  for (auto& in : sets)
    for (at::Tensor* x : {&in.q, &in.k, &in.v, &in.a}) x->requires_grad_(true);
  const Timing t = time_it(
      [&](int i) {
        const Inputs& in = sets[i % kSets];
        const at::Tensor y = lawcat_core(in, P, s);
        y.backward(in.dy);
      },
      warmup, reps);
  for (auto& p : params) {
    p.mutable_grad() = at::Tensor();
    p.requires_grad_(false);
  }
  for (auto& in : sets)
    for (at::Tensor* x : {&in.q, &in.k, &in.v, &in.a}) {
      x->mutable_grad() = at::Tensor();
      x->requires_grad_(false);
    }
  return t;
}

// --breakdown: the parts (conv, φ, fused prologue, gate, GLA forward / backward) timed alone.
std::map<std::string, double> time_parts(const Inputs& in, const Params& P, const Shape& s) {
  at::NoGradGuard ng;
  std::map<std::string, double> parts;
  const int64_t B = in.q.size(0), T = in.q.size(1);
  const at::Tensor qf = in.q.reshape({B, T, s.H * s.d}), kf = in.k.reshape({B, T, s.Hkv * s.d});
  auto tm = [&](const std::function<void()>& f) { return time_it([&](int) { f(); }, 2, 10).ms; };
  parts["conv_q"] = tm([&] { ops::cuda::causal_conv1d_fwd(qf, P.conv_q, at::Tensor(), 1, s.d); });
  parts["conv_k"] = tm([&] { ops::cuda::causal_conv1d_fwd(kf, P.conv_k, at::Tensor(), s.H / s.Hkv, s.d); });
  const at::Tensor qc = ops::cuda::causal_conv1d_fwd(qf, P.conv_q, at::Tensor(), 1, s.d).view({B, T, s.H, s.d});
  const at::Tensor kc = ops::cuda::causal_conv1d_fwd(kf, P.conv_k, at::Tensor(), s.H / s.Hkv, s.d)
                            .view({B, T, s.H, s.d});
  parts["phi_q"] = tm([&] { feature_map(qc, P.wphi); });
  parts["prologue_fused"] = tm([&] {
    ops::cuda::lawcat_prologue_fwd(in.q, in.k, in.a, P.conv_q, P.conv_k, P.wphi, P.w2, P.b2);
  });
  parts["gate"] = tm([&] { gate(in.a, P, s.Hkv, s.d); });
  const at::Tensor fq = feature_map(qc, P.wphi), fk = feature_map(kc, P.wphi), g = gate(in.a, P, s.Hkv, s.d);
  parts["gla_fwd"] =
      tm([&] { ops::cuda::chunk_gla_fwd(fq, fk, in.v, g, at::Tensor(), at::Tensor(), ops::GlaOptions{}); });
  parts["gla_bwd"] = tm([&] {
    ops::cuda::chunk_gla_bwd(fq, fk, in.v, g, at::Tensor(), at::Tensor(), in.dy, at::Tensor(), at::Tensor(),
                             ops::GlaOptions{});
  });
  return parts;
}

// RoPE (base 500000) + SDPA, forward and (opt.backward) forward + backward, into row.
void time_sdpa(BenchAttentionRow& row, std::vector<Inputs>& sets, const Shape& s, int64_t T,
               const BenchAttentionOptions& opt) {
  const auto f32 = at::TensorOptions().device(at::kCUDA).dtype(at::kFloat);
  const at::Tensor pos = at::arange(T, f32).unsqueeze(1);
  const at::Tensor inv = at::pow(500000.0, -at::arange(0, s.d, 2, f32) / double(s.d)).unsqueeze(0);
  const at::Tensor ang = at::cat({pos * inv, pos * inv}, 1);  // [T, d]
  const at::Tensor cos = ang.cos().to(at::kBFloat16), sin = ang.sin().to(at::kBFloat16);
  {
    at::NoGradGuard ng;
    const Timing t = time_it([&](int i) { sdpa_core(sets[i % kSets], cos, sin, s); }, opt.warmup, opt.reps);
    row.sdpa_fwd_ms = t.ms;
    row.sdpa_fwd_peak_mib = t.peak_mib;
  }
  if (opt.backward) {
    for (auto& in : sets)
      for (at::Tensor* x : {&in.q, &in.k, &in.v}) x->requires_grad_(true);
    const Timing t = time_it(
        [&](int i) {
          const Inputs& in = sets[i % kSets];
          sdpa_core(in, cos, sin, s).backward(in.dy.transpose(1, 2));
        },
        opt.warmup, opt.reps);
    row.sdpa_fwdbwd_ms = t.ms;
    row.sdpa_fwdbwd_peak_mib = t.peak_mib;
  }
}

// One row: shape s at length T: HBM floors, the core forward and forward + backward, the
// breakdown and SDPA as the options ask; the allocator cache is emptied at the end.
BenchAttentionRow bench_row(const Shape& s, Params& P, int64_t T, const BenchAttentionOptions& opt, double copy_gbps) {
  BenchAttentionRow row;
  row.shape = s.name;
  row.T = T;
  row.H = s.H;
  row.Hkv = s.Hkv;
  row.d = s.d;
  const int64_t B = opt.batch, r = opt.rank;
  std::vector<Inputs> sets = make_inputs(s, B, T, r);
  // HBM floors: fwd reads q, k, v, a and writes y; bwd reads them + dy, writes the grads.
  const double io_in = 2.0 * B * T * (s.H * s.d + 2 * s.Hkv * s.d + r), io_y = 2.0 * B * T * s.H * s.d;
  row.floor_fwd_ms = (io_in + io_y) / (copy_gbps * 1e9) * 1e3;
  row.floor_fwdbwd_ms = (3 * io_in + 2 * io_y) / (copy_gbps * 1e9) * 1e3;
  {
    at::NoGradGuard ng;
    const Timing t = time_it([&](int i) { lawcat_core(sets[i % kSets], P, s); }, opt.warmup, opt.reps);
    row.lawcat_fwd_ms = t.ms;
    row.lawcat_fwd_peak_mib = t.peak_mib;
  }
  if (opt.backward) {
    const Timing t = time_core_fwdbwd(P, sets, s, opt.warmup, opt.reps);
    row.lawcat_fwdbwd_ms = t.ms;
    row.lawcat_fwdbwd_peak_mib = t.peak_mib;
  }
  if (opt.breakdown) row.parts_ms = time_parts(sets[0], P, s);
  if (opt.sdpa) time_sdpa(row, sets, s, T, opt);
  c10::cuda::CUDACachingAllocator::emptyCache();  // with this row's inputs still held, as before the split
  return row;
}

}  // namespace

BenchAttentionResult bench_attention(const BenchAttentionOptions& opt) {
  if (!at::hasCUDA()) throw std::runtime_error("bench attention: no CUDA device");
  BenchAttentionResult result;
  result.device = at::cuda::getCurrentDeviceProperties()->name;
  result.copy_gbps = measure_copy_gbps();
  for (const auto& shape_name : opt.shapes) {
    const Shape s = shape_of(shape_name, opt.heads);
    Params P = make_params(s, opt.conv_width, opt.rank);
    for (const int64_t T : opt.seqlens) {
      result.rows.push_back(bench_row(s, P, T, opt, result.copy_gbps));
    }
  }
  return result;
}
#endif

}  // namespace lawcat::bench
