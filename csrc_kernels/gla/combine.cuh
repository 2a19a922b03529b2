// The combine pass of the chunked GLA (shared by the GLA kernels, gla/launch_template.h, and
// the fused LAWCAT forward / backward, lawcat/fused_launch.h): the segment-local states of a
// sequence's segments become each segment's start state (forward) or dL/dS at its end
// (reverse), in place. One launcher, launch_combine.
#pragma once
#include "gla/gla_common.cuh"

namespace lawcat::kernels::gla {

// ---------------------------------------------------------------------------
// Combine segment states in place (forward: buf[si] <- state at the segment START;
// reverse: buf[si] <- dL/dS at the segment END) and write the final state (ds0) of
// sequences without chunks. One thread per state element (+ the z entries).
template <bool kReverse>
__global__ void gla_combine_kernel(const GlaParams p) {
  const int D = p.D, H = p.H;
  const int n = blockIdx.x / H, h = blockIdx.x - n * H;
  const int e = blockIdx.y * blockDim.x + threadIdx.x;
  if (e >= D * D + D) return;
  const bool isz = e >= D * D;
  const int f = isz ? e - D * D : e / D;
  int s_begin, s_end;
  if (p.cu_seqlens != nullptr) {
    s_begin = p.seq_seg_offsets[n];
    s_end = p.seq_seg_offsets[n + 1];
  } else {
    const int nseg = p.seqlen > 0 ? p.segs_per_seq : 0;
    s_begin = n * nseg;
    s_end = s_begin + nseg;
  }
  auto buf = [&](int si) -> float& {
    return isz ? p.seg_z[(size_t(si) * H + h) * D + f] : p.seg_S[(size_t(si) * H + h) * D * D + e];
  };
  auto gam = [&](int si) { return p.seg_gamma[(size_t(si) * H + h) * D + f]; };
  const size_t nh = size_t(n) * H + h;
  // Segments in batches of kB whose loads are all issued before the dependent scan (one memory
  // latency per batch instead of one per segment).
  constexpr int kB = 8;
  float loc[kB], g[kB];
  if (!kReverse) {
    float run = 0.f;
    if (p.s0 != nullptr) run = isz ? p.z0[nh * D + f] : p.s0[nh * D * D + e];
    for (int b0 = s_begin; b0 < s_end; b0 += kB) {
#pragma unroll
      for (int j = 0; j < kB; ++j)
        if (b0 + j < s_end) { loc[j] = buf(b0 + j); g[j] = gam(b0 + j); }
#pragma unroll
      for (int j = 0; j < kB; ++j)
        if (b0 + j < s_end) {
          buf(b0 + j) = run;
          if (b0 + j + 1 < s_end) run = g[j] * run + loc[j];
        }
    }
    if (s_begin == s_end && p.sT != nullptr) {
      if (isz) p.zT[nh * D + f] = run; else p.sT[nh * D * D + e] = run;
    }
  } else {
    float run = 0.f;
    if (p.dST != nullptr && !isz) run = p.dST[nh * D * D + e];
    if (p.dzT != nullptr && isz) run = p.dzT[nh * D + f];
    for (int b1 = s_end - 1; b1 >= s_begin; b1 -= kB) {
#pragma unroll
      for (int j = 0; j < kB; ++j)
        if (b1 - j >= s_begin) { loc[j] = buf(b1 - j); g[j] = gam(b1 - j); }
#pragma unroll
      for (int j = 0; j < kB; ++j)
        if (b1 - j >= s_begin) {
          buf(b1 - j) = run;
          if (b1 - j > s_begin) run = g[j] * run + loc[j];
        }
    }
    if (s_begin == s_end && p.ds0 != nullptr) {
      if (isz) p.dz0[nh * D + f] = run; else p.ds0[nh * D * D + e] = run;
    }
  }
}

// One thread per state element (+ the z entries) of every (sequence, head).
inline cudaError_t launch_combine(const GlaParams& p, bool reverse, cudaStream_t stream) {
  if (p.num_seqs == 0) return cudaSuccess;
  const dim3 grid(p.num_seqs * p.H, (p.D * p.D + p.D + 255) / 256);
  if (reverse) gla_combine_kernel<true><<<grid, 256, 0, stream>>>(p);
  else gla_combine_kernel<false><<<grid, 256, 0, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace lawcat::kernels::gla
