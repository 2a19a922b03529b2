// Fused single-token GLA decode step: one CTA per (batch, head); thread v owns column v
// of the state for all F rows (coalesced across threads), z and the denominator are
// computed once per CTA in shared memory. Any F, V; fp32 state.
//   S <- diag(e^g) S + k v^T,  z <- e^g z + k,  y = q^T S / (q . z + eps)
#include "api.h"
#include "common.cuh"
#include "static_switch.h"

namespace lawcat::kernels::gla {

constexpr int kStepThreads = 128;

template <typename T>
__global__ void __launch_bounds__(kStepThreads) gla_step_kernel(const GlaStepParams p) {
  extern __shared__ float sm[];  // q[F], k[F], alpha[F]
  float* sq = sm;
  float* sk = sm + p.F;
  float* sa = sm + 2 * p.F;
  __shared__ float s_den;
  const int b = blockIdx.x / p.H, h = blockIdx.x - b * p.H, hk = h / (p.H / p.Hkv);
  const T* q = static_cast<const T*>(p.q) + b * p.q_batch_stride + h * p.q_head_stride;
  const T* k = static_cast<const T*>(p.k) + b * p.k_batch_stride + h * p.k_head_stride;
  const T* v = static_cast<const T*>(p.v) + b * p.v_batch_stride + hk * p.v_head_stride;
  const float* g = p.g + b * p.g_batch_stride + hk * p.g_head_stride;
  float* S = p.state + (size_t(b) * p.H + h) * p.F * p.V;
  float* z = p.normalizer + (size_t(b) * p.H + h) * p.F;
  for (int f = threadIdx.x; f < p.F; f += kStepThreads) {
    sq[f] = to_float(q[f]);
    sk[f] = to_float(k[f]);
    sa[f] = __expf(g[f]);
  }
  __syncthreads();
  if (threadIdx.x < 32) {
    float part = 0.f;
    for (int f = threadIdx.x; f < p.F; f += 32) {
      const float zf = sa[f] * z[f] + sk[f];
      z[f] = zf;
      part = fmaf(sq[f], zf, part);
    }
    part = warp_sum(part);
    if (threadIdx.x == 0) s_den = p.normalize ? part + p.eps : 1.f;
  }
  __syncthreads();
  T* y = static_cast<T*>(p.y) + (size_t(b) * p.H + h) * p.V;
  for (int c = threadIdx.x; c < p.V; c += kStepThreads) {
    const float vc = to_float(v[c]);
    float acc = 0.f;
    for (int f = 0; f < p.F; ++f) {
      const float s = fmaf(sa[f], S[size_t(f) * p.V + c], sk[f] * vc);
      S[size_t(f) * p.V + c] = s;
      acc = fmaf(sq[f], s, acc);
    }
    y[c] = from_float<T>(acc / s_den);
  }
}

}  // namespace lawcat::kernels::gla

namespace lawcat::kernels {
cudaError_t launch_gla_step(const GlaStepParams& p, cudaStream_t stream) {
  if (p.H <= 0 || p.Hkv <= 0 || p.H % p.Hkv != 0 || p.F <= 0 || p.V <= 0) return cudaErrorInvalidValue;
  if (p.batch == 0) return cudaSuccess;
  return LAWCAT_DTYPE_SWITCH(p.dtype, T, [&] {
    const size_t smem = sizeof(float) * 3 * p.F;
    auto kernel = gla::gla_step_kernel<T>;
    if (smem > 48 * 1024) LAWCAT_CUDA_TRY(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
    kernel<<<p.batch * p.H, gla::kStepThreads, smem, stream>>>(p);
    return cudaGetLastError();
  });
}
}  // namespace lawcat::kernels
