// Causal depthwise Conv1D, one decode token: one thread per INPUT channel computes the
// outputs of the `repeat` output channels that read it, then rolls its cache entry
// (oldest first: cache[.., 0] is x_{t-W+1}, cache[.., W-2] is x_{t-1}).
#include "conv1d/conv1d_common.cuh"

namespace lawcat::kernels::conv1d {

template <typename T>
__global__ void __launch_bounds__(kThreads) conv1d_step_kernel(Conv1dParams p) {
  const int cin_total = p.channels / p.repeat;
  const int ci = blockIdx.x * kThreads + threadIdx.x;
  const int b = blockIdx.y;
  if (ci >= cin_total) return;
  const int W = p.width;
  const float xt = to_float(static_cast<const T*>(p.x)[b * p.x_batch_stride + ci]);
  T* cache = const_cast<T*>(static_cast<const T*>(p.cache)) + ((int64_t)b * cin_total + ci) * (W - 1);
  const int head = ci / p.head_dim, lane = ci - head * p.head_dim;
  T* out = static_cast<T*>(p.out) + (int64_t)b * p.channels;
  for (int r = 0; r < p.repeat; ++r) {
    const int c = (head * p.repeat + r) * p.head_dim + lane;
    float s = p.w[c * W + W - 1] * xt;
    for (int j = 0; j < W - 1; ++j) s = fmaf(p.w[c * W + j], to_float(cache[j]), s);
    out[c] = from_float<T>(s);
  }
  for (int j = 0; j + 1 < W - 1; ++j) cache[j] = cache[j + 1];
  if (W > 1) cache[W - 2] = from_float<T>(xt);
}

}  // namespace lawcat::kernels::conv1d

namespace lawcat::kernels {
cudaError_t launch_conv1d_step(const Conv1dParams& p, cudaStream_t stream) {
  using namespace conv1d;
  if (p.width < 1 || p.repeat < 1 || p.channels % p.repeat != 0) return cudaErrorInvalidValue;
  if (p.batch == 0 || p.channels == 0) return cudaSuccess;
  return LAWCAT_DTYPE_SWITCH(p.dtype, T, [&] {
    dim3 grid((p.channels / p.repeat + kThreads - 1) / kThreads, p.batch);
    conv1d_step_kernel<T><<<grid, kThreads, 0, stream>>>(p);
    return cudaGetLastError();
  });
}
}  // namespace lawcat::kernels
