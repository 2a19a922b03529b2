// Softmax attention of one query token over a static KV cache whose length lives on the
// device (the softmax model's CUDA-graph decode, model::StaticKVCache): split-KV in two
// launches of fixed shape, so one captured graph serves every position.
//   1. grid (splits, Hkv, B): a CTA scores its chunk of keys for the g query rows of its kv
//      head (lanes of a warp share a key row: coalesced 16-byte loads), takes the chunk's max
//      and exp-sum per row, and sums the values weighted by exp(s - max): a partial
//      (out, max, sum). CTAs past the valid length do nothing.
//   2. grid (Hkv, B): the partials of the splits that hold valid keys combined.
// Masked SDPA (the memory-efficient kernel: one CTA per (kv head, 64 query rows), no split
// over keys) took 30 ms per token at 32K for a 1B model; this reads each key once per token
// with every SM busy. Scores and sums in fp32, base-2 exponentials.
#include "api.h"
#include "common.cuh"
#include "static_switch.h"

namespace lawcat::kernels::decode_attn {

constexpr int kThreads = 128, kWarps = kThreads / 32;
constexpr float kLog2e = 1.4426950408889634f;

// 8 consecutive 16-bit elements (one 16-byte vector) as floats
template <typename T>
__device__ __forceinline__ void load8(const T* p, float (&x)[8]) {
  const uint4 u = __ldg(reinterpret_cast<const uint4*>(p));
  const uint32_t w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 f = unpack2(w[i], static_cast<T*>(nullptr));
    x[2 * i] = f.x, x[2 * i + 1] = f.y;
  }
}
// fp32 only to instantiate the dtype switch (the launcher refuses fp32 caches)
template <>
__device__ __forceinline__ void load8<float>(const float* p, float (&x)[8]) {
#pragma unroll
  for (int i = 0; i < 8; ++i) x[i] = p[i];
}
__device__ __forceinline__ float2 load2(const float* p) { return make_float2(p[0], p[1]); }
__device__ __forceinline__ float2 load2(const __nv_bfloat16* p) {
  return __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(p));
}
__device__ __forceinline__ float2 load2(const __half* p) { return __half22float2(*reinterpret_cast<const __half2*>(p)); }

__device__ __forceinline__ int valid_length(const DecodeAttentionParams& p) {
  const int64_t n = *p.position + 1;  // keys 0..position (this token's included)
  return n < 1 ? 1 : (n > p.capacity ? p.capacity : static_cast<int>(n));
}

template <typename T, int kD>
__global__ void __launch_bounds__(kThreads) split_kernel(const DecodeAttentionParams p) {
  constexpr int kLanesPerRow = kD / 8, kRowsPerWarp = 32 / kLanesPerRow;
  constexpr int kColPairs = kD / 2, kJGroups = kThreads / kColPairs;  // value phase: thread = (j group, 2 columns)
  extern __shared__ float sm[];
  float* s_p = sm;                            // [G][chunk] scores, then exp2(s - max)
  float* s_acc = sm + p.groups * p.chunk;     // [kJGroups][G][D] value partials
  __shared__ float s_max[kDecodeAttnMaxGroups], s_sum[kDecodeAttnMaxGroups];
  const int split = blockIdx.x, hk = blockIdx.y, b = blockIdx.z, G = p.groups;
  const int len = valid_length(p), j0 = split * p.chunk;
  const int64_t part = (int64_t(b) * p.Hkv + hk) * p.splits + split;
  if (j0 >= len) return;  // the combine reads only splits holding valid keys
  const int n = min(p.chunk, len - j0);
  const T* K = static_cast<const T*>(p.k) + b * p.k_batch_stride + hk * p.k_head_stride + int64_t(j0) * p.k_row_stride;
  const T* V = static_cast<const T*>(p.v) + b * p.v_batch_stride + hk * p.v_head_stride + int64_t(j0) * p.v_row_stride;
  const T* Q = static_cast<const T*>(p.q) + b * p.q_batch_stride + hk * p.q_head_stride;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, li = lane % kLanesPerRow, rw = lane / kLanesPerRow;

  // 1. scores s[g][j] = (q_g . k_j) * scale * log2(e): kLanesPerRow lanes per key row.
  float q[kDecodeAttnMaxGroups][8];
  const float qs = p.scale * kLog2e;
#pragma unroll
  for (int g = 0; g < kDecodeAttnMaxGroups; ++g) {
    if (g < G) {
      load8(Q + g * p.q_row_stride + li * 8, q[g]);
#pragma unroll
      for (int e = 0; e < 8; ++e) q[g][e] *= qs;
    }
  }
  for (int jb = warp * kRowsPerWarp; jb < n; jb += kWarps * kRowsPerWarp) {  // jb is warp-uniform: all lanes shuffle
    const int j = jb + rw;
    const bool in = j < n;
    float kx[8];
    if (in) load8(K + int64_t(j) * p.k_row_stride + li * 8, kx);
#pragma unroll
    for (int g = 0; g < kDecodeAttnMaxGroups; ++g) {
      if (g < G) {
        float s = 0.f;
        if (in) {
#pragma unroll
          for (int e = 0; e < 8; ++e) s = fmaf(q[g][e], kx[e], s);
        }
#pragma unroll
        for (int o = kLanesPerRow / 2; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
        if (in && li == 0) s_p[g * p.chunk + j] = s;
      }
    }
  }
  __syncthreads();

  // 2. per row: the chunk's max and sum of exp2(s - max) (warp per row).
  for (int g = warp; g < G; g += kWarps) {
    float m = -INFINITY;
    for (int j = lane; j < n; j += 32) m = fmaxf(m, s_p[g * p.chunk + j]);
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
    float l = 0.f;
    for (int j = lane; j < n; j += 32) {
      const float e = exp2f(s_p[g * p.chunk + j] - m);
      s_p[g * p.chunk + j] = e;
      l += e;
    }
    l = warp_sum(l);
    if (lane == 0) s_max[g] = m, s_sum[g] = l;
  }
  __syncthreads();

  // 3. values: thread (j group, column pair) sums p[g][j] v[j] over its rows j.
  const int jg = threadIdx.x / kColPairs, c = 2 * (threadIdx.x % kColPairs);
  float acc[kDecodeAttnMaxGroups][2] = {};
  for (int j = jg; j < n; j += kJGroups) {
    const float2 vj = load2(V + int64_t(j) * p.v_row_stride + c);
#pragma unroll
    for (int g = 0; g < kDecodeAttnMaxGroups; ++g) {
      if (g < G) {
        const float w = s_p[g * p.chunk + j];
        acc[g][0] = fmaf(w, vj.x, acc[g][0]);
        acc[g][1] = fmaf(w, vj.y, acc[g][1]);
      }
    }
  }
#pragma unroll
  for (int g = 0; g < kDecodeAttnMaxGroups; ++g) {
    if (g < G) {
      s_acc[(jg * G + g) * kD + c] = acc[g][0];
      s_acc[(jg * G + g) * kD + c + 1] = acc[g][1];
    }
  }
  __syncthreads();
  for (int i = threadIdx.x; i < G * kD; i += kThreads) {
    float s = 0.f;
    for (int r = 0; r < kJGroups; ++r) s += s_acc[r * G * kD + i];
    p.part_out[part * G * kD + i] = s;
  }
  if (threadIdx.x < G) {
    p.part_max[part * G + threadIdx.x] = s_max[threadIdx.x];
    p.part_sum[part * G + threadIdx.x] = s_sum[threadIdx.x];
  }
}

template <typename T, int kD>
__global__ void __launch_bounds__(kThreads) combine_kernel(const DecodeAttentionParams p) {
  const int hk = blockIdx.x, b = blockIdx.y, G = p.groups;
  const int used = (valid_length(p) + p.chunk - 1) / p.chunk;
  const int64_t base = (int64_t(b) * p.Hkv + hk) * p.splits;
  T* out = static_cast<T*>(p.out) + b * p.out_batch_stride + hk * p.out_head_stride;
  for (int i = threadIdx.x; i < G * kD; i += kThreads) {
    const int g = i / kD;
    float m = -INFINITY;
    for (int s = 0; s < used; ++s) m = fmaxf(m, p.part_max[(base + s) * G + g]);
    float l = 0.f, o = 0.f;
    for (int s = 0; s < used; ++s) {
      const float w = exp2f(p.part_max[(base + s) * G + g] - m);
      l = fmaf(w, p.part_sum[(base + s) * G + g], l);
      o = fmaf(w, p.part_out[(base + s) * G * kD + i], o);
    }
    out[g * p.out_row_stride + (i - g * kD)] = from_float<T>(o / l);
  }
}

}  // namespace lawcat::kernels::decode_attn

namespace lawcat::kernels {
size_t decode_attention_smem(int groups, int chunk, int D) {
  const int jgroups = 128 / (D / 2);
  return sizeof(float) * (size_t(groups) * chunk + size_t(jgroups) * groups * D);
}

cudaError_t launch_decode_attention(const DecodeAttentionParams& p, cudaStream_t stream) {
  if (p.dtype == DType::kF32 || !decode_attention_supported(p.D, p.groups) || p.chunk <= 0 || p.capacity <= 0 ||
      p.splits != (p.capacity + p.chunk - 1) / p.chunk || !p.position || !p.part_out || !p.part_max || !p.part_sum)
    return cudaErrorInvalidValue;
  if (p.batch == 0 || p.Hkv == 0) return cudaSuccess;
  return LAWCAT_DTYPE_SWITCH(p.dtype, T, [&] {
    return LAWCAT_HEADDIM_SWITCH(p.D, kD, [&] {
      const size_t smem = decode_attention_smem(p.groups, p.chunk, kD);
      LAWCAT_CUDA_TRY(launch_with_smem(decode_attn::split_kernel<T, kD>, dim3(p.splits, p.Hkv, p.batch),
                                       decode_attn::kThreads, smem, stream, p));
      decode_attn::combine_kernel<T, kD><<<dim3(p.Hkv, p.batch), decode_attn::kThreads, 0, stream>>>(p);
      return cudaGetLastError();
    });
  });
}
}  // namespace lawcat::kernels
