// Causal depthwise Conv1D backward. Same thread layout as the forward. Per thread:
//   dx[t]   = sum_j w[j] * dout[t + kMaxW - 1 - j]   (sliding window of dout ahead of t)
//   dw[j]  += dout[t] * x[t - kMaxW + 1 + j]         (sliding window of x behind t)
//   dcache  = dx at the W-1 times before t = 0 (first time tile only).
// dx / dcache are per OUTPUT channel; with repeat > 1 the binding sums the repeated
// heads. dw partial sums go to a zeroed fp32 buffer with one atomicAdd per tap per thread.
#include "conv1d/conv1d_common.cuh"

namespace lawcat::kernels::conv1d {

template <typename T, int kVec, int kMaxW>
__global__ void __launch_bounds__(kThreads) conv1d_bwd_kernel(Conv1dParams p) {
  const int c0 = (blockIdx.x * kThreads + threadIdx.x) * kVec;
  if (c0 >= p.channels) return;
  const int b = blockIdx.z, t0 = blockIdx.y * kTile, t1 = min(p.seqlen, t0 + kTile);
  const int W = p.width, T_ = p.seqlen, cin = in_channel(p, c0), cin_total = p.channels / p.repeat;
  const T* x = static_cast<const T*>(p.x) + b * p.x_batch_stride + cin;
  const T* cache = static_cast<const T*>(p.cache);
  const T* dout = static_cast<const T*>(p.dout) + ((int64_t)b * T_) * p.channels + c0;

  float w[kMaxW][kVec];
#pragma unroll
  for (int j = 0; j < kMaxW; ++j)
#pragma unroll
    for (int i = 0; i < kVec; ++i) {
      const int tap = j - (kMaxW - W);
      w[j][i] = tap >= 0 ? p.w[(c0 + i) * W + tap] : 0.f;
    }
  auto load_dout = [&](int t, float (&dst)[kVec]) {
    if (t >= 0 && t < T_) {
      load_vec<T, kVec>(dout + (int64_t)t * p.channels, dst);
    } else {
#pragma unroll
      for (int i = 0; i < kVec; ++i) dst[i] = 0.f;
    }
  };

  // d(cache): gradient of the W-1 inputs before t = 0.
  if (p.dcache != nullptr && t0 == 0) {
#pragma unroll
    for (int m = 0; m < kMaxW - 1; ++m) {
      if (m >= W - 1) break;
      const int tau = m - (W - 1);
      float acc[kVec] = {};
#pragma unroll
      for (int j = 0; j < kMaxW; ++j) {
        float d[kVec];
        load_dout(tau + kMaxW - 1 - j, d);
#pragma unroll
        for (int i = 0; i < kVec; ++i) acc[i] = fmaf(w[j][i], d[i], acc[i]);
      }
#pragma unroll
      for (int i = 0; i < kVec; ++i) p.dcache[((int64_t)b * p.channels + c0 + i) * (W - 1) + m] = acc[i];
    }
  }

  float xwin[kMaxW][kVec], dwin[kMaxW][kVec], dw[kMaxW][kVec];
#pragma unroll
  for (int j = 0; j < kMaxW; ++j)
#pragma unroll
    for (int i = 0; i < kVec; ++i) dw[j][i] = 0.f;
#pragma unroll
  // slot j + 1 holds x[t0 - (kMaxW - 1) + j]; slot 0 is shifted out at the first step
  for (int j = 0; j < kMaxW - 1; ++j) {
    const int tt = t0 - (kMaxW - 1) + j;
    if (tt >= 0) {
      load_vec<T, kVec>(x + tt * p.x_row_stride, xwin[j + 1]);
    } else if (cache != nullptr && tt >= -(W - 1)) {
#pragma unroll
      for (int i = 0; i < kVec; ++i)
        xwin[j + 1][i] = to_float(cache[((int64_t)b * cin_total + cin + i) * (W - 1) + (W - 1) + tt]);
    } else {
#pragma unroll
      for (int i = 0; i < kVec; ++i) xwin[j + 1][i] = 0.f;
    }
  }
#pragma unroll
  for (int j = 1; j < kMaxW; ++j) load_dout(t0 - 1 + j, dwin[j]);

  for (int t = t0; t < t1; ++t) {
#pragma unroll
    for (int j = 0; j < kMaxW - 1; ++j)
#pragma unroll
      for (int i = 0; i < kVec; ++i) {
        xwin[j][i] = xwin[j + 1][i];
        dwin[j][i] = dwin[j + 1][i];
      }
    load_vec<T, kVec>(x + t * p.x_row_stride, xwin[kMaxW - 1]);
    load_dout(t + kMaxW - 1, dwin[kMaxW - 1]);
    float dx[kVec];
#pragma unroll
    for (int i = 0; i < kVec; ++i) {
      float s = 0.f;
#pragma unroll
      for (int j = 0; j < kMaxW; ++j) {
        s = fmaf(w[j][i], dwin[kMaxW - 1 - j][i], s);
        dw[j][i] = fmaf(dwin[0][i], xwin[j][i], dw[j][i]);
      }
      dx[i] = s;
    }
    const int64_t o = ((int64_t)b * T_ + t) * p.channels + c0;
    if (p.dx_fp32) {
#pragma unroll
      for (int i = 0; i < kVec; ++i) static_cast<float*>(p.dx)[o + i] = dx[i];
    } else {
      store_vec<T, kVec>(static_cast<T*>(p.dx) + o, dx);
    }
  }
#pragma unroll
  for (int j = 0; j < kMaxW; ++j) {
    const int tap = j - (kMaxW - W);
    if (tap < 0) continue;
#pragma unroll
    for (int i = 0; i < kVec; ++i) atomicAdd(&p.dw[(c0 + i) * W + tap], dw[j][i]);
  }
}

template <typename T, int kVec, int kMaxW>
static cudaError_t run_bwd(const Conv1dParams& p, cudaStream_t stream) {
  const int vecs = (p.channels + kVec - 1) / kVec;
  dim3 grid((vecs + kThreads - 1) / kThreads, (p.seqlen + kTile - 1) / kTile, p.batch);
  conv1d_bwd_kernel<T, kVec, kMaxW><<<grid, kThreads, 0, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace lawcat::kernels::conv1d

namespace lawcat::kernels {
cudaError_t launch_conv1d_bwd(const Conv1dParams& p, cudaStream_t stream) {
  using namespace conv1d;
  if (p.width < 1 || p.width > 8 || p.repeat < 1 || p.channels % p.repeat != 0) return cudaErrorInvalidValue;
  if (p.batch == 0 || p.channels == 0) return cudaSuccess;
  if (p.seqlen == 0) return cudaSuccess;
  return LAWCAT_DTYPE_SWITCH(p.dtype, T, [&] {
    const bool vec = can_vectorize(p, sizeof(T));
    return LAWCAT_BOOL_SWITCH(p.width <= 4, kSmall, [&] {
      constexpr int kMaxW = kSmall ? 4 : 8;
      // W > 4 (ablations only) runs on scalar channels: 8 taps x 8 channels would spill.
      return (vec && kSmall) ? run_bwd<T, 16 / sizeof(T), kMaxW>(p, stream) : run_bwd<T, 1, kMaxW>(p, stream);
    });
  });
}
}  // namespace lawcat::kernels
