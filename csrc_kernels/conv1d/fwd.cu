// Causal depthwise Conv1D forward. One thread per (batch, kVec output channels, kTile
// time steps): the last kMaxW inputs live in registers as a sliding window; the filter
// is left-padded with zeros to kMaxW taps so that any width W <= kMaxW runs the same
// unrolled loop. fp32 accumulation; x before t = 0 comes from the cache (or is 0).
#include "conv1d/conv1d_common.cuh"

namespace lawcat::kernels::conv1d {

template <typename T, int kVec, int kMaxW>
__global__ void __launch_bounds__(kThreads) conv1d_fwd_kernel(Conv1dParams p) {
  const int c0 = (blockIdx.x * kThreads + threadIdx.x) * kVec;
  if (c0 >= p.channels) return;
  const int b = blockIdx.z, t0 = blockIdx.y * kTile, t1 = min(p.seqlen, t0 + kTile);
  const int W = p.width, cin = in_channel(p, c0), cin_total = p.channels / p.repeat;
  const T* x = static_cast<const T*>(p.x) + b * p.x_batch_stride + cin;
  const T* cache = static_cast<const T*>(p.cache);

  float w[kMaxW][kVec];  // w[j] multiplies x[t - kMaxW + 1 + j]
#pragma unroll
  for (int j = 0; j < kMaxW; ++j)
#pragma unroll
    for (int i = 0; i < kVec; ++i) {
      const int tap = j - (kMaxW - W);
      w[j][i] = tap >= 0 ? p.w[(c0 + i) * W + tap] : 0.f;
    }
  float win[kMaxW][kVec];
#pragma unroll
  // slot j + 1 holds x[t0 - (kMaxW - 1) + j]; slot 0 is shifted out at the first step
  for (int j = 0; j < kMaxW - 1; ++j) {
    const int tt = t0 - (kMaxW - 1) + j;
    if (tt >= 0) {
      load_vec<T, kVec>(x + tt * p.x_row_stride, win[j + 1]);
    } else if (cache != nullptr && tt >= -(W - 1)) {
#pragma unroll
      for (int i = 0; i < kVec; ++i)
        win[j + 1][i] = to_float(cache[((int64_t)b * cin_total + cin + i) * (W - 1) + (W - 1) + tt]);
    } else {
#pragma unroll
      for (int i = 0; i < kVec; ++i) win[j + 1][i] = 0.f;
    }
  }
  T* out = static_cast<T*>(p.out) + ((int64_t)b * p.seqlen) * p.channels + c0;
  for (int t = t0; t < t1; ++t) {
#pragma unroll
    for (int j = 0; j < kMaxW - 1; ++j)
#pragma unroll
      for (int i = 0; i < kVec; ++i) win[j][i] = win[j + 1][i];
    load_vec<T, kVec>(x + t * p.x_row_stride, win[kMaxW - 1]);
    float acc[kVec];
#pragma unroll
    for (int i = 0; i < kVec; ++i) {
      float s = 0.f;
#pragma unroll
      for (int j = 0; j < kMaxW; ++j) s = fmaf(w[j][i], win[j][i], s);
      acc[i] = s;
    }
    store_vec<T, kVec>(out + (int64_t)t * p.channels, acc);
  }
}

template <typename T, int kVec, int kMaxW>
static cudaError_t run_fwd(const Conv1dParams& p, cudaStream_t stream) {
  const int vecs = (p.channels + kVec - 1) / kVec;
  dim3 grid((vecs + kThreads - 1) / kThreads, (p.seqlen + kTile - 1) / kTile, p.batch);
  conv1d_fwd_kernel<T, kVec, kMaxW><<<grid, kThreads, 0, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace lawcat::kernels::conv1d

namespace lawcat::kernels {
cudaError_t launch_conv1d_fwd(const Conv1dParams& p, cudaStream_t stream) {
  using namespace conv1d;
  if (p.width < 1 || p.width > 8 || p.repeat < 1 || p.channels % p.repeat != 0) return cudaErrorInvalidValue;
  if (p.batch == 0 || p.seqlen == 0 || p.channels == 0) return cudaSuccess;
  return LAWCAT_DTYPE_SWITCH(p.dtype, T, [&] {
    const bool vec = can_vectorize(p, sizeof(T));
    return LAWCAT_BOOL_SWITCH(p.width <= 4, kSmall, [&] {
      constexpr int kMaxW = kSmall ? 4 : 8;
      // W > 4 (ablations only) runs on scalar channels: 8 taps x 8 channels would spill.
      return (vec && kSmall) ? run_fwd<T, 16 / sizeof(T), kMaxW>(p, stream) : run_fwd<T, 1, kMaxW>(p, stream);
    });
  });
}
}  // namespace lawcat::kernels
