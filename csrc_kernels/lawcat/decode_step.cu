// One LAWCAT decoding step in one launch (docs/decode.md): per (batch, query head) CTA the
// conv steps of q and k (caches rolled in place), φ of both, the gate of the head's kv head
// and the normalized GLA state update and readout. The separate ops (two conv steps, two
// feature maps, the gate's linear + logsigmoid, gla_step) are ~25 small kernels per layer,
// which is what bounded the CUDA-graph decode. Intermediates are rounded where the separate
// ops round them (conv outputs and φ in the input dtype, gate and state in fp32); the small
// products (u W_phi, a W2^T) are plain fp32 loops here and cuBLAS there, so the two paths agree
// to rounding, not bit for bit.
#include "api.h"
#include "common.cuh"
#include "static_switch.h"

namespace lawcat::kernels::lawcat_step {

constexpr int kThreads = 128;  // 4 warps: one per softmax of step 3

// ATen's log_sigmoid: min(x, 0) - log1p(exp(-|x|)).
__device__ __forceinline__ float log_sigmoid(float x) { return fminf(x, 0.f) - log1pf(expf(-fabsf(x))); }

template <typename T, int kD>
__global__ void __launch_bounds__(kThreads) lawcat_step_kernel(const LawcatStepParams p) {
  constexpr int kF = kD, kf = kD / 2;
  __shared__ float s_u[2 * kD];     // conv'd q (0..D) and k (D..2D)
  __shared__ float s_proj[2 * kf];  // u W_phi for q (0..f) and k (f..2f)
  __shared__ float s_phi[2 * kF];   // φ(q~) (0..F), φ(k~) (F..2F), rounded to T
  __shared__ float s_alpha[kF];     // e^{log α}
  __shared__ float s_a[kLawcatMaxFusedRank];
  __shared__ float s_den;
  const int b = blockIdx.y, h = blockIdx.x, hk = h / (p.H / p.Hkv), tid = threadIdx.x;
  const int W = p.width, R = p.rank;

  // 1. conv steps (one thread per channel of q, then of k), the caches rolled in place.
  for (int i = tid; i < 2 * kD; i += kThreads) {
    const bool is_k = i >= kD;
    const int d = is_k ? i - kD : i, c = h * kD + d;
    const T* x = static_cast<const T*>(is_k ? p.k : p.q) + int64_t(b) * (is_k ? p.k_batch_stride : p.q_batch_stride) +
                 (is_k ? hk : h) * kD + d;
    const float* w = (is_k ? p.conv_k : p.conv_q) + int64_t(c) * W;
    const float xt = to_float(*x);
    float s = w[W - 1] * xt;
    if (W > 1) {
      T* cache = static_cast<T*>(is_k ? p.conv_k_cache : p.conv_q_cache) + (int64_t(b) * p.H * kD + c) * (W - 1);
      for (int j = 0; j < W - 1; ++j) s = fmaf(w[j], to_float(cache[j]), s);
      for (int j = 0; j + 1 < W - 1; ++j) cache[j] = cache[j + 1];
      cache[W - 2] = from_float<T>(xt);
    }
    s_u[i] = to_float(from_float<T>(s));  // the conv op's output dtype
  }
  for (int r = tid; r < R; r += kThreads) s_a[r] = p.a[int64_t(b) * p.a_batch_stride + r];
  __syncthreads();

  // 2. u W_phi for q and k (thread per output), and the gate of kv head hk (thread per feature).
  const float* wphi = p.wphi + int64_t(h) * kD * kf;
  for (int i = tid; i < 2 * kf; i += kThreads) {
    const bool is_k = i >= kf;
    const int col = is_k ? i - kf : i;
    const float* u = s_u + (is_k ? kD : 0);
    float s = 0.f;
    for (int d = 0; d < kD; ++d) s = fmaf(u[d], wphi[d * kf + col], s);
    s_proj[i] = s;
  }
  for (int i = tid; i < kF; i += kThreads) {
    const int row = hk * kF + i;
    const float* w2 = p.w2 + int64_t(row) * R;
    float logit = p.b2 ? p.b2[row] : 0.f;
    for (int r = 0; r < R; ++r) logit = fmaf(s_a[r], w2[r], logit);
    s_alpha[i] = __expf(log_sigmoid(logit) / p.tau);  // gla_step's e^g of the fp32 log-gate
  }
  __syncthreads();

  // 3. φ(u) = [softmax(u W); softmax(-u W)] clamped at 1e-12: warp 0 / 1 for q's halves, 2 / 3 for k's.
  {
    const int warp = tid >> 5, lane = tid & 31;
    const bool is_k = warp >= 2;
    const float sign = (warp & 1) ? -1.f : 1.f;
    const float* x = s_proj + (is_k ? kf : 0);
    float m = -INFINITY;
    for (int j = lane; j < kf; j += 32) m = fmaxf(m, sign * x[j]);
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
    float sum = 0.f;
    for (int j = lane; j < kf; j += 32) sum += expf(sign * x[j] - m);
    sum = warp_sum(sum);
    float* out = s_phi + (is_k ? kF : 0) + ((warp & 1) ? kf : 0);
    for (int j = lane; j < kf; j += 32) out[j] = to_float(from_float<T>(fmaxf(expf(sign * x[j] - m) / sum, 1e-12f)));
  }
  __syncthreads();

  // 4. normalized GLA step (gla_step's order): z and the denominator, then S column by column.
  const float* phq = s_phi;
  const float* phk = s_phi + kF;
  float* S = p.state + (int64_t(b) * p.H + h) * kF * kD;
  float* z = p.normalizer + (int64_t(b) * p.H + h) * kF;
  if (tid < 32) {
    float part = 0.f;
    for (int f = tid; f < kF; f += 32) {
      const float zf = s_alpha[f] * z[f] + phk[f];
      z[f] = zf;
      part = fmaf(phq[f], zf, part);
    }
    part = warp_sum(part);
    if (tid == 0) s_den = p.normalize ? part + p.eps : 1.f;
  }
  __syncthreads();
  const T* v = static_cast<const T*>(p.v) + int64_t(b) * p.v_batch_stride + hk * kD;
  T* y = static_cast<T*>(p.y) + (int64_t(b) * p.H + h) * kD;
  for (int c = tid; c < kD; c += kThreads) {
    const float vc = to_float(v[c]);
    float acc = 0.f;
#pragma unroll 8
    for (int f = 0; f < kF; ++f) {
      const float s = fmaf(s_alpha[f], S[f * kD + c], phk[f] * vc);
      S[f * kD + c] = s;
      acc = fmaf(phq[f], s, acc);
    }
    y[c] = from_float<T>(acc / s_den);
  }
}

}  // namespace lawcat::kernels::lawcat_step

namespace lawcat::kernels {
cudaError_t launch_lawcat_step(const LawcatStepParams& p, cudaStream_t stream) {
  if (!lawcat_step_supported(p.dtype, p.D, p.width, p.rank) || p.H <= 0 || p.Hkv <= 0 || p.H % p.Hkv != 0 ||
      p.batch < 0 || (p.width > 1 && (!p.conv_q_cache || !p.conv_k_cache)))
    return cudaErrorInvalidValue;
  if (p.batch == 0) return cudaSuccess;
  return LAWCAT_DTYPE_SWITCH(p.dtype, T, [&] {
    return LAWCAT_HEADDIM_SWITCH(p.D, kD, [&] {
      lawcat_step::lawcat_step_kernel<T, kD><<<dim3(p.H, p.batch), lawcat_step::kThreads, 0, stream>>>(p);
      return cudaGetLastError();
    });
  });
}
}  // namespace lawcat::kernels
