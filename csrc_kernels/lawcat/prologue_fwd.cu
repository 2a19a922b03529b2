// LAWCAT prologue, forward (see api.h): conv -> Hedgehog feature map for q and k, and
// the GLA gate, fused so that q~, k~ and the feature-map logits never touch HBM.
// One CTA (256 threads) per (64-token tile, query head h):
//   1. q~ [64, D] fp32 in shared memory (width-W causal conv read straight from global;
//      rows before t = 0 are zero), logits s = q~ W_h [64, D/2] on the matrix units,
//      row-wise softmax of s and of -s (4 threads per row) -> phi_q.
//   2. the same for k~ (input head h / g, this head's filters) -> phi_k.
//   3. heads h % g == 0: g = logsigmoid(a W2_hk^T + b) / tau for their kv head.
#include "api.h"
#include "common.cuh"
#include "static_switch.h"

namespace lawcat::kernels::prologue {

constexpr int kThreads = 256, kRows = 64, kMaxW = 8;

template <typename T, int kD>
struct Smem {
  static constexpr int kPad = 16 / sizeof(T);
  static constexpr int kLdU = kD + kPad, kLdW = kD / 2 + kPad, kLdS = kD / 2 + 4, kLdA = 16 + kPad;
  static constexpr size_t kU = 0;                                        // T [64][LdU]  conv output
  static constexpr size_t kW = kU + sizeof(T) * kRows * kLdU;            // T [D][LdW]   W_h
  static constexpr size_t kS = kW + sizeof(T) * kD * kLdW;               // f32 [64][LdS] logits
  static constexpr size_t kCq = kS + sizeof(float) * kRows * kLdS;       // f32 [D][kMaxW] q filters
  static constexpr size_t kCk = kCq + sizeof(float) * kD * kMaxW;        // f32 [D][kMaxW] k filters
  static constexpr size_t kBytes = kCk + sizeof(float) * kD * kMaxW;
};

template <typename T, int kN>
__device__ __forceinline__ void store_row(T* dst, const float (&src)[kN]) {
  constexpr int kVec = 16 / sizeof(T);
#pragma unroll
  for (int v = 0; v < kN / kVec; ++v) {
    uint4 raw;
    T* e = reinterpret_cast<T*>(&raw);
#pragma unroll
    for (int i = 0; i < kVec; ++i) e[i] = from_float<T>(src[v * kVec + i]);
    *reinterpret_cast<uint4*>(dst + v * kVec) = raw;
  }
}

template <typename T, int kD>
__device__ void feature_map_tile(const PrologueParams& p, const T* x, int x_heads, int in_head, const float* sConv,
                                 T* out, int b, int t0, int h, T* sU, const T* sW, float* sS) {
  using L = Smem<T, kD>;
  constexpr int LdU = L::kLdU, LdW = L::kLdW, LdS = L::kLdS, kHalf = kD / 2, kVec = 16 / sizeof(T);
  const int tid = threadIdx.x, W = p.width;
  // 1. causal conv into sU: thread = (row, kVec channels), 16-byte loads of W rows
  for (int i = tid; i < kRows * (kD / kVec); i += kThreads) {
    const int r = i / (kD / kVec), c0 = (i - r * (kD / kVec)) * kVec, t = t0 + r;
    float acc[kVec] = {};
    if (t < p.seqlen) {
      for (int j = 0; j < W; ++j) {
        const int tt = t - W + 1 + j;
        if (tt < 0) continue;
        const uint4 raw = __ldg(reinterpret_cast<const uint4*>(x + ((size_t(b) * p.seqlen + tt) * x_heads + in_head) * kD + c0));
        const T* e = reinterpret_cast<const T*>(&raw);
#pragma unroll
        for (int v = 0; v < kVec; ++v) acc[v] = fmaf(sConv[(c0 + v) * kMaxW + j], to_float(e[v]), acc[v]);
      }
    }
    store_row<T, kVec>(sU + r * LdU + c0, acc);
  }
  __syncthreads();
  // 2. logits s = u W (M = 64, N = D/2, K = D); warp -> m-tile warp/2, kNT n-tiles
  {
    constexpr int kNT = kD / 32;
    const int warp = tid / 32, m0 = warp / 2 * 16, n0 = warp % 2 * kNT * 8;
    float acc[kNT][4] = {};
    tile_mma_smem<T, kNT, false, true>(acc, sU, LdU, sW, LdW, m0, n0, 0, kD);
#pragma unroll
    for (int j = 0; j < kNT; ++j) tile_for_each(acc[j], m0, n0 + 8 * j, [&](int r, int c, float& v) { sS[r * LdS + c] = v; });
  }
  __syncthreads();
  // 3. softmax(s) and softmax(-s) per row: 4 threads per row, kHalf / 4 contiguous columns each
  {
    constexpr int kPer = kHalf / 4;
    const int r = tid / 4, part = tid % 4, t = t0 + r;
    const float* s = sS + r * LdS + part * kPer;
    float mx = -INFINITY, mn = INFINITY;
#pragma unroll
    for (int j = 0; j < kPer; ++j) { mx = fmaxf(mx, s[j]); mn = fminf(mn, s[j]); }
#pragma unroll
    for (int o = 1; o < 4; o <<= 1) {
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
      mn = fminf(mn, __shfl_xor_sync(0xffffffffu, mn, o));
    }
    float e1[kPer], e2[kPer], s1 = 0.f, s2 = 0.f;
#pragma unroll
    for (int j = 0; j < kPer; ++j) {
      e1[j] = __expf(s[j] - mx);
      e2[j] = __expf(mn - s[j]);
      s1 += e1[j];
      s2 += e2[j];
    }
#pragma unroll
    for (int o = 1; o < 4; o <<= 1) {
      s1 += __shfl_xor_sync(0xffffffffu, s1, o);
      s2 += __shfl_xor_sync(0xffffffffu, s2, o);
    }
    const float i1 = 1.f / s1, i2 = 1.f / s2;
#pragma unroll
    for (int j = 0; j < kPer; ++j) {
      e1[j] = fmaxf(e1[j] * i1, 1e-12f);
      e2[j] = fmaxf(e2[j] * i2, 1e-12f);
    }
    if (t < p.seqlen) {
      T* o_row = out + ((size_t(b) * p.seqlen + t) * p.H + h) * kD;
      store_row<T, kPer>(o_row + part * kPer, e1);
      store_row<T, kPer>(o_row + kHalf + part * kPer, e2);
    }
  }
  __syncthreads();
}

template <typename T, int kD>
__global__ void __launch_bounds__(kThreads) prologue_fwd_kernel(const PrologueParams p) {
  using L = Smem<T, kD>;
  extern __shared__ __align__(16) unsigned char smem[];
  T* sU = reinterpret_cast<T*>(smem + L::kU);
  T* sW = reinterpret_cast<T*>(smem + L::kW);
  float* sS = reinterpret_cast<float*>(smem + L::kS);
  float* sCq = reinterpret_cast<float*>(smem + L::kCq);
  float* sCk = reinterpret_cast<float*>(smem + L::kCk);
  const int t0 = blockIdx.x * kRows, h = blockIdx.y, b = blockIdx.z, tid = threadIdx.x;
  const int group = p.H / p.Hkv, hk = h / group, W = p.width;
  for (int i = tid; i < kD * (kD / 2); i += kThreads) {
    const int r = i / (kD / 2), c = i - r * (kD / 2);
    sW[r * L::kLdW + c] = from_float<T>(p.wphi[(size_t(h) * kD + r) * (kD / 2) + c]);
  }
  for (int i = tid; i < kD * W; i += kThreads) {
    const int c = i / W, j = i - c * W;
    sCq[c * kMaxW + j] = p.conv_q[(size_t(h) * kD + c) * W + j];
    sCk[c * kMaxW + j] = p.conv_k[(size_t(h) * kD + c) * W + j];
  }
  __syncthreads();  // filters and W_h are read by other threads in feature_map_tile
  feature_map_tile<T, kD>(p, static_cast<const T*>(p.q), p.H, h, sCq, static_cast<T*>(p.phi_q), b, t0, h, sU, sW, sS);
  feature_map_tile<T, kD>(p, static_cast<const T*>(p.k), p.Hkv, hk, sCk, static_cast<T*>(p.phi_k), b, t0, h, sU, sW, sS);
  if (h % group != 0) return;
  // gate for kv head hk: M = 64 rows, N = D, K = R (multiple of 16), a-tile and W2 slice
  // staged as T in shared memory (reusing sU for a [64][R] and sW for W2 [D][R], R <= 16
  // per pass: K is processed 16 columns at a time).
  constexpr int kNT = kD / 16, LdA = L::kLdA;
  const int warp = tid / 32, m0 = warp / 2 * 16, n0 = warp % 2 * kNT * 8;
  const T* a = static_cast<const T*>(p.a);
  T* sA = sU;  // [64][LdA]
  T* sB = sW;  // [D][LdA]
  float acc[kNT][4] = {};
  for (int k0 = 0; k0 < p.rank; k0 += 16) {
    for (int i = tid; i < kRows * 16; i += kThreads) {
      const int r = i / 16, c = i - r * 16, t = min(t0 + r, p.seqlen - 1);
      sA[r * LdA + c] = a[(size_t(b) * p.seqlen + t) * p.rank + k0 + c];
    }
    for (int i = tid; i < kD * 16; i += kThreads) {
      const int n = i / 16, c = i - n * 16;
      sB[n * LdA + c] = from_float<T>(p.w2[(size_t(hk) * kD + n) * p.rank + k0 + c]);
    }
    __syncthreads();
    tile_mma_smem<T, kNT, false, false>(acc, sA, LdA, sB, LdA, m0, n0, 0, 16);
    __syncthreads();
  }
#pragma unroll
  for (int j = 0; j < kNT; ++j)
    tile_for_each(acc[j], m0, n0 + 8 * j, [&](int r, int c, float& v) {
      const int t = t0 + r;
      if (t >= p.seqlen) return;
      const float x = v + (p.b2 != nullptr ? p.b2[size_t(hk) * kD + c] : 0.f);
      const float ls = fminf(x, 0.f) - log1pf(__expf(-fabsf(x)));
      p.g[((size_t(b) * p.seqlen + t) * p.Hkv + hk) * kD + c] = ls / p.tau;
    });
}

}  // namespace lawcat::kernels::prologue

namespace lawcat::kernels {
cudaError_t launch_lawcat_prologue_fwd(const PrologueParams& p, cudaStream_t stream) {
  static_assert(prologue::kMaxW >= kLawcatMaxWidth, "the prologue's filters must hold every supported width");
  if (p.H <= 0 || p.Hkv <= 0 || p.H % p.Hkv != 0 || !lawcat_prologue_supported(p.D, p.width, p.rank))
    return cudaErrorInvalidValue;
  if (p.batch == 0 || p.seqlen == 0) return cudaSuccess;
  return LAWCAT_DTYPE_SWITCH(p.dtype, T, [&] {
    return LAWCAT_HEADDIM_SWITCH(p.D, kD, [&] {
      using L = prologue::Smem<T, kD>;
      auto kernel = prologue::prologue_fwd_kernel<T, kD>;
      if (L::kBytes > 48 * 1024)
        LAWCAT_CUDA_TRY(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(L::kBytes)));
      dim3 grid((p.seqlen + prologue::kRows - 1) / prologue::kRows, p.H, p.batch);
      kernel<<<grid, prologue::kThreads, L::kBytes, stream>>>(p);
      return cudaGetLastError();
    });
  });
}
}  // namespace lawcat::kernels
