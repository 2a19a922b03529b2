// The LAWCAT attention core backward, fused (see api.h, LawcatBwdParams). Launches:
//   gate    : G recomputed (fused_fwd.cuh's lawcat_gate_kernel)
//   dstate  : per (segment, query head), chunks in reverse from dS = 0: the segment's local
//             dL/dS at its start and its total decay (skipped for the first segment); reads
//             the Q' the training forward saved instead of recomputing conv and φ
//   combine : gla_combine_kernel<true> turns them into dL/dS at every segment END
//   grad    : per (segment, query head, value split), chunks in reverse with dS in registers:
//             every gradient of the chunk (D = 128: two CTAs per (segment, head), one per half
//             of the value columns; see VSplit); Q' and K' are read as the forward saved them
//             at D = 128 and recomputed from the raw rows at D = 64 (lawcat_bwd_reads_kprime)
//   dq edge : dq rows across segment boundaries (see kDqEdgeRows)
// Same single reference point per chunk as the forward (r = (G_0 + G_{C-1}) / 2,
// Q' = φq e^{G-r}, K' = φk e^{r-G}), S0 = the state before the chunk (saved by the forward),
// dN = dy / den, dden = -(dy . y) / den, B = mask(dN v^T + dden), dS' = e^{G_C - r} dS:
//
//   X  = B K' + dN (e^r S0)^T + dden (e^r z0)      dφq = e^{G-r} X,  so φq dφq = Q' X
//   Y  = B^T Q' + v dS'^T + e^{G_C-r} dz           dφk = e^{r-G} Y,  so φk dφk = K' Y
//   dv = A^T dN + K' dS'
//   d log α_t = sum_{s >= t in chunk} (Q' X - K' Y)_s + carry,
//       carry = e^{G_C - r} (sum_v (e^r S0) dS + e^r z0 dz) + sum_s K'_s (v_s dS'^T + e^{G_C-r} dz)
//             (= sum_v S_end dS + z_end dz: the decay's effect on everything after the chunk)
//   dS <- e^r (e^{G_C - r} dS + Q'^T dN),  dz <- e^r (e^{G_C - r} dz + Q'^T dden)
// then the feature map (softmax backward: p dp = the products above), dq~ = du W_φ^T,
// dW_φ += q~^T du, and the causal conv backward (dq, dk, conv weights); the gate logits'
// gradient is d log α sigmoid(-logit) / tau (the factor from the gate kernel) and its row
// sums give db. dv, dk and the gate gradients are per kv head: the query heads of a group add
// into them (fp32 atomics).
//
// A chunk whose decay exceeds kMaxDrop (the forward's exact path) is counted in
// extreme_chunks; the caller then recomputes with the unfused ops.
#pragma once
#include <cooperative_groups.h>

#include "lawcat/fused_fwd.cuh"

namespace lawcat::kernels::fused {

constexpr float kLn2 = 0.6931471805599453f;

enum BVec { bRef = 0, bEq, bPost, bPre, bEz, bDz, bDzp, bCarry, bGam, bDb, bNumVec };

// dq is written once per row (in the input dtype). The causal conv's backward gives row t
// contributions from the chunk of t and, for the last kWp - 1 rows of a chunk, from the next
// chunk: inside a segment (walked in reverse) those arrive first and wait in shared memory; across
// a segment boundary both partial sums go to LawcatBwdParams::dq_edge [seg][h][2][kDqEdgeRows][D]
// (0: from the later segment's first chunk, 1: the earlier segment's own part) and
// lawcat_dq_edge_kernel adds them. (kDqEdgeRows: api.h)
static_assert(kDqEdgeRows >= 7, "dq_edge holds kWp - 1 rows per boundary");

// Value columns per CTA of the gradient pass. D = 128 splits v (and dL/dS) into two halves,
// one CTA each: the feature side (Q', K', A) is repeated by both, every v-side product is
// linear in the split, and the dden / dz terms are taken by split 0 alone (the others see
// dden = dz = 0), so the splits' gradients add up. This is what fits D = 128 into shared memory.
template <class Tr>
struct VSplit {
  static constexpr int kSplit = Tr::kD == 128 ? 2 : 1;
  static constexpr int kDv = Tr::kD / kSplit;
  static constexpr int kLdV = kDv + 8;  // T rows of Dv (v, dN, e^r S0, dS')
  // dL/dS [D x Dv] in mma accumulators: warp -> one 16-row m-tile, kStateNT n-tiles
  static constexpr int kStateWPM = Tr::kWarps / (Tr::kD / 16);
  static constexpr int kStateNT = (kDv / 8) / kStateWPM;
  static_assert(kStateWPM >= 1 && kStateNT >= 2 && kStateNT % 2 == 0, "state tiling");
};

// This CTA's columns [v0, v0 + Dv) of dL/dS, fp32 in registers.
template <class Tr>
struct VStateTile {
  static constexpr int kNT = VSplit<Tr>::kStateNT;
  float acc[kNT][4];
  __device__ __forceinline__ int m0() const { return (threadIdx.x / 32) / VSplit<Tr>::kStateWPM * 16; }
  __device__ __forceinline__ int n0() const { return (threadIdx.x / 32) % VSplit<Tr>::kStateWPM * kNT * 8; }
  __device__ __forceinline__ void load(const float* src, int ld) {  // src: row 0, column v0
#pragma unroll
    for (int j = 0; j < kNT; ++j) tile_for_each(acc[j], m0(), n0() + 8 * j, [&](int r, int c, float& v) { v = src[r * ld + c]; });
  }
  // acc[f][.] *= s[f]
  __device__ __forceinline__ void scale_rows(const float* s) {
    const int f0 = m0() + Lane().gr;
#pragma unroll
    for (int j = 0; j < kNT; ++j) {
      acc[j][0] *= s[f0]; acc[j][1] *= s[f0]; acc[j][2] *= s[f0 + 8]; acc[j][3] *= s[f0 + 8];
    }
  }
};

// Shared memory of the gradient pass. Q' / K' are overwritten by du_q / du_k once every product
// that reads them is done; v .. dS are dead after step 4 and hold the conv output u and the fp32
// dx~ of steps 6-7: of both sides at once where they fit (D = 64), else of this CTA's side (the
// cluster pair at D = 128: split 0 takes q, split 1 k).
template <class Tr, int kWp>
struct BwdLayout {
  static constexpr int C = Tr::kC, D = Tr::kD;
  using T = typename Tr::T;
  using VS = VSplit<Tr>;
  static constexpr size_t al(size_t b) { return (b + 15) / 16 * 16; }
  static constexpr size_t kSideBytes = al(sizeof(T) * C * Tr::kLdX) + al(sizeof(float) * C * Tr::kLdG);
  static constexpr size_t kDeadBytes =
      2 * al(sizeof(T) * C * VS::kLdV) + 2 * al(sizeof(T) * C * Tr::kLdA) + 2 * al(sizeof(T) * D * VS::kLdV);
  static constexpr bool kBothSides = 2 * kSideBytes <= kDeadBytes;  // D = 64: steps 6-7 for q and k at once
  static_assert(C * Tr::kLdX <= D * VS::kLdV, "du_q [C x LdX] is kept over e^r S0 [D x LdV]");
  size_t xq, xk, wphi, fq, fk, g, q, k, v, dn, A, B, S, dS, u, dxt, u2, dxt2, vec, inv, dden, scr, dqc, total;
  __host__ __device__ BwdLayout() {
    size_t o = 0;
    auto take = [&](size_t bytes) { const size_t at = o; o += (bytes + 15) / 16 * 16; return at; };
    xq = take(sizeof(T) * (C + 8) * Tr::kLdX);
    xk = take(sizeof(T) * (C + 8) * Tr::kLdX);
    wphi = take(sizeof(T) * D * Tr::kLdW);
    fq = take(sizeof(float) * D * kWp);
    fk = take(sizeof(float) * D * kWp);
    g = take(sizeof(float) * C * Tr::kLdG);
    q = take(sizeof(T) * C * Tr::kLdX);
    k = take(sizeof(T) * C * Tr::kLdX);
    v = take(sizeof(T) * C * VS::kLdV);
    dn = take(sizeof(T) * C * VS::kLdV);
    A = take(sizeof(T) * C * Tr::kLdA);
    B = take(sizeof(T) * C * Tr::kLdA);
    S = take(sizeof(T) * D * VS::kLdV);
    dS = take(sizeof(T) * D * VS::kLdV);
    const size_t end = o;
    u = v;
    dxt = u + al(sizeof(T) * C * Tr::kLdX);
    u2 = u + kSideBytes;  // (k side, only with kBothSides)
    dxt2 = u2 + al(sizeof(T) * C * Tr::kLdX);
    const size_t dead_end = v + (kBothSides ? 2 : 1) * kSideBytes;
    o = end > dead_end ? end : dead_end;
    vec = take(sizeof(float) * bNumVec * D);
    inv = take(sizeof(float) * C);
    dden = take(sizeof(float) * C);
    const int scr_floats = gla::Scan<Tr>::kScratch > Tr::kThreads ? gla::Scan<Tr>::kScratch : Tr::kThreads;
    scr = take(sizeof(float) * scr_floats);  // column_scan and weighted_colsum, at different times
    dqc = take(sizeof(float) * 2 * kDqEdgeRows * D);  // dq carry, double-buffered (see the gradient pass)
    total = o;
  }
};

// Shared memory of the dstate pass.
template <class Tr>
struct DStateLayout {
  static constexpr int C = Tr::kC, D = Tr::kD;
  using T = typename Tr::T;
  size_t dn, y, g, q, vec, inv, dden, scr, total;
  __host__ __device__ DStateLayout() {
    size_t o = 0;
    auto take = [&](size_t bytes) { const size_t at = o; o += (bytes + 15) / 16 * 16; return at; };
    // Q', dy, y and G double-buffered: chunk c - 1 loads while chunk c computes.
    dn = take(2 * sizeof(T) * C * Tr::kLdX);
    y = take(2 * sizeof(T) * C * Tr::kLdX);
    g = take(2 * sizeof(float) * C * Tr::kLdG);
    q = take(2 * sizeof(T) * C * Tr::kLdX);
    vec = take(sizeof(float) * bNumVec * D);
    inv = take(sizeof(float) * C);
    dden = take(sizeof(float) * C);
    scr = take(sizeof(float) * Tr::kThreads);
    total = o;
  }
};

// Column sums of Q' weighted by dden, over the chunk (all threads; the partial sums go
// through part[kThreads]; returns the sum for feature tid when tid < D). Ends synced.
template <class Tr>
__device__ __forceinline__ float weighted_colsum(const typename Tr::T* Qp, const float* w, float* part) {
  constexpr int D = Tr::kD, kParts = Tr::kThreads / D, kRows = Tr::kC / kParts;
  const int f = threadIdx.x % D, pt = threadIdx.x / D;
  float s = 0.f;
#pragma unroll 8
  for (int r = pt * kRows; r < (pt + 1) * kRows; ++r) s = fmaf(to_float(Qp[r * Tr::kLdX + f]), w[r], s);
  part[pt * D + f] = s;
  __syncthreads();
  float t = 0.f;
  if (threadIdx.x < D)
#pragma unroll
    for (int q = 0; q < kParts; ++q) t += part[q * D + threadIdx.x];
  __syncthreads();
  return t;
}

// Rows [r0, r0 + nrows) of the chunk, one warp: dy (in dn) -> dN = dy / den in place,
// dden = -(dy . y) / den (0 without normalization). inv[r] = 1 / den (0 past the end).
template <class Tr>
__device__ __forceinline__ void dn_rows(typename Tr::T* dn, const typename Tr::T* y, const float* inv, float* dden,
                                        int r0, int nrows, bool normalize) {
  constexpr int D = Tr::kD, LdX = Tr::kLdX, kPer = D / 32;  // 2 or 4 columns per lane
  const int lane = threadIdx.x & 31;
  for (int r = r0; r < r0 + nrows; ++r) {
    float dd = 0.f;
    const float iv = inv[r];
#pragma unroll
    for (int e = 0; e < kPer; e += 2) {
      const int col = lane * kPer + e;
      const float2 a = ld2(dn + r * LdX + col), b = ld2(y + r * LdX + col);
      dd = fmaf(a.x, b.x, fmaf(a.y, b.y, dd));
      st2(dn + r * LdX + col, a.x * iv, a.y * iv);
    }
    dd = warp_sum(dd);
    if (lane == 0) dden[r] = normalize ? -dd * iv : 0.f;
  }
}

// ---- dstate pass: local dL/dS of a segment (reverse), for the combine ----------------
template <class Tr, int kWp>
__global__ void __launch_bounds__(Tr::kThreads, Tr::kMinBlocks) lawcat_dstate_kernel(const LawcatBwdParams P) {
  using T = typename Tr::T;
  constexpr int C = Tr::kC, D = Tr::kD, LdX = Tr::kLdX, LdG = Tr::kLdG, kVec = 8;
  const LawcatFwdParams& F = P.fwd;
  const GlaParams& p = F.gla;
  const DStateLayout<Tr> L;
  extern __shared__ __align__(16) unsigned char smem[];
  T* const sDN0 = reinterpret_cast<T*>(smem + L.dn);
  T* const sY0 = reinterpret_cast<T*>(smem + L.y);
  float* const sG0 = reinterpret_cast<float*>(smem + L.g);
  T* const sQ0 = reinterpret_cast<T*>(smem + L.q);
  float* sVec = reinterpret_cast<float*>(smem + L.vec);
  float* sInv = reinterpret_cast<float*>(smem + L.inv);
  float* sDden = reinterpret_cast<float*>(smem + L.dden);
  float* sScr = reinterpret_cast<float*>(smem + L.scr);
  auto vec = [&](BVec which) { return sVec + int(which) * D; };

  const int seg_id = blockIdx.x, h = blockIdx.y, tid = threadIdx.x, warp = tid / 32;
  const gla::SegInfo seg = gla::get_seg(p, seg_id);
  const gla::SeqInfo sq = gla::get_seq<C>(p, seg.n);
  if (seg.c0 == 0) return;  // the first segment's local dL/dS is never needed
  const int hk = h / (p.H / p.Hkv);
  const T* qp_base = static_cast<const T*>(F.qprime) + h * D;
  const T* y_base = static_cast<const T*>(P.y) + h * D;
  const T* dy_base = static_cast<const T*>(P.dy) + h * D;
  const float* g_base = F.gate_cumsum + hk * D;
  for (int f = tid; f < D; f += Tr::kThreads) { vec(bDz)[f] = 0.f; vec(bGam)[f] = 1.f; }
  gla::StateTile<Tr> dS;
  dS.zero();
  const Lane ln;

  auto issue_loads = [&](int c) {
    constexpr int kPerRow = D / kVec;
    const int t0 = c * C, valid = min(C, sq.len - t0), b = c & 1;
    for (int i = tid; i < C * kPerRow; i += Tr::kThreads) {
      const int r = i / kPerRow, cv = (i - r * kPerRow) * kVec;
      const bool ok = r < valid;
      const size_t row = size_t(sq.tok0 + (ok ? t0 + r : 0)) * p.H * D;
      cp_async16(sQ0 + (b * C + r) * LdX + cv, qp_base + row + cv, ok);
      cp_async16(sDN0 + (b * C + r) * LdX + cv, dy_base + row + cv, ok);
      cp_async16(sY0 + (b * C + r) * LdX + cv, y_base + row + cv, ok);
    }
    load_gate_rows<Tr>(sG0 + b * C * LdG, g_base, p, sq, t0, C, valid);
    cp_async_commit();
  };
  issue_loads(seg.c1 - 1);

  for (int c = seg.c1 - 1; c >= seg.c0; --c) {
    const int t0 = c * C, valid = min(C, sq.len - t0), b = c & 1;
    T* const sDN = sDN0 + b * C * LdX;
    T* const sY = sY0 + b * C * LdX;
    float* const sG = sG0 + b * C * LdG;
    T* const sQ = sQ0 + b * C * LdX;
    __syncthreads();  // the previous chunk's readers are done (sInv, the other buffers)
    cp_async_wait_all();
    if (tid < C) sInv[tid] = tid < valid ? 1.f / F.den[size_t(sq.tok0 + t0 + tid) * p.H + h] : 0.f;
    __syncthreads();
    if (c - 1 >= seg.c0) issue_loads(c - 1);
    {
      const int f = tid;
      float G0 = 0.f, GC = 0.f;
      if (f < D) { G0 = sG[f]; GC = sG[(valid - 1) * LdG + f]; }
      const bool extreme = __syncthreads_or(f < D && G0 - GC > Tr::kMaxDrop);
      if (extreme && tid == 0 && P.extreme_chunks != nullptr) atomicAdd(P.extreme_chunks, 1);
      if (f < D) {
        const float ref = 0.5f * (G0 + GC);
        vec(bEq)[f] = ex2(ref);
        vec(bPost)[f] = ex2(GC - ref);
        vec(bGam)[f] *= ex2(GC);
      }
    }
    dn_rows<Tr>(sDN, sY, sInv, sDden, warp * (C / Tr::kWarps), C / Tr::kWarps, p.normalize);
    __syncthreads();
    // dS <- e^r (e^{G_C - r} dS + Q'^T dN);  dz likewise with dden
    {
      const float* post = vec(bPost);
#pragma unroll
      for (int j = 0; j < Tr::kStateNT; ++j) {
        const int f0 = dS.m0() + ln.gr;
        dS.acc[j][0] *= post[f0]; dS.acc[j][1] *= post[f0]; dS.acc[j][2] *= post[f0 + 8]; dS.acc[j][3] *= post[f0 + 8];
      }
      tile_mma_smem<T, Tr::kStateNT, true, true>(dS.acc, sQ, LdX, sDN, LdX, dS.m0(), dS.n0(), 0, C);
      const float* eq = vec(bEq);
#pragma unroll
      for (int j = 0; j < Tr::kStateNT; ++j) {
        const int f0 = dS.m0() + ln.gr;
        dS.acc[j][0] *= eq[f0]; dS.acc[j][1] *= eq[f0]; dS.acc[j][2] *= eq[f0 + 8]; dS.acc[j][3] *= eq[f0 + 8];
      }
    }
    const float s = weighted_colsum<Tr>(sQ, sDden, sScr);
    if (tid < D) vec(bDz)[tid] = vec(bEq)[tid] * (vec(bPost)[tid] * vec(bDz)[tid] + s);
  }
  __syncthreads();
  dS.store(p.seg_S + (size_t(seg_id) * p.H + h) * D * D);
  for (int f = tid; f < D; f += Tr::kThreads) {
    p.seg_z[(size_t(seg_id) * p.H + h) * D + f] = vec(bDz)[f];
    p.seg_gamma[(size_t(seg_id) * p.H + h) * D + f] = vec(bGam)[f];
  }
}

// fp32 atomic adds of 2 / 4 consecutive floats (vector atomics on sm_90).
__device__ __forceinline__ void atomic_add2(float* dst, float a, float b) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  atomicAdd(reinterpret_cast<float2*>(dst), make_float2(a, b));
#else
  atomicAdd(dst, a);
  atomicAdd(dst + 1, b);
#endif
}
__device__ __forceinline__ void atomic_add4(float* dst, float4 v) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  atomicAdd(reinterpret_cast<float4*>(dst), v);
#else
  atomicAdd(dst, v.x);
  atomicAdd(dst + 1, v.y);
  atomicAdd(dst + 2, v.z);
  atomicAdd(dst + 3, v.w);
#endif
}

// Split arrive / wait of the cluster barrier (all threads of both CTAs; release / acquire
// order the shared-memory writes one CTA makes before arriving for the other's reads).
__device__ __forceinline__ void cluster_arrive() { asm volatile("barrier.cluster.arrive.release.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void cluster_wait() { asm volatile("barrier.cluster.wait.acquire.aligned;\n" ::: "memory"); }

// ---- gradient pass -------------------------------------------------------------------
// One CTA per (segment, query head, value split), chunks in reverse with this split's columns
// of dL/dS in registers. Per chunk: loads (dden from the full dy, y rows in global memory while
// the copies fly), scales, e^r S0 / dS' / the carry's S part, A and B (Q', K' loaded with the
// chunk or recomputed), then X, dv, the dS update and Y with both softmax backwards in
// registers (the raw φ is Q' e^{r-G} and K' e^{G-r}, read before G is overwritten by the gate
// terms), the gate gradient, and per
// side (both at D = 64; at D = 128 one per CTA of the cluster pair, after adding the partner's du):
// u = conv(x) again, dx~ = du W_φ^T, dW_φ += u^T du and the conv backward.
template <class Tr, int kWp>
__global__ void __launch_bounds__(Tr::kThreads, 1) lawcat_bwd_kernel(const LawcatBwdParams P) {
  using T = typename Tr::T;
  using VS = VSplit<Tr>;
  constexpr int C = Tr::kC, D = Tr::kD, Dh = Tr::kHalf, Dv = VS::kDv, LdX = Tr::kLdX, LdV = VS::kLdV,
                LdA = Tr::kLdA, LdG = Tr::kLdG, LdW = Tr::kLdW, kHalo = kWp - 1, kVec = 8;
  static_assert(Tr::kAW == 2, "the X / Y epilogues take one warp per half of the feature dims");
  static_assert(Dv == 64, "dN rows are scaled two columns per lane");
  const LawcatFwdParams& F = P.fwd;
  const GlaParams& p = F.gla;
  const BwdLayout<Tr, kWp> L;
  extern __shared__ __align__(16) unsigned char smem[];
  T* const sXq = reinterpret_cast<T*>(smem + L.xq);
  T* const sXk = reinterpret_cast<T*>(smem + L.xk);
  T* const sWphi = reinterpret_cast<T*>(smem + L.wphi);
  float* const sFq = reinterpret_cast<float*>(smem + L.fq);
  float* const sFk = reinterpret_cast<float*>(smem + L.fk);
  float* const sG = reinterpret_cast<float*>(smem + L.g);
  T* const sQ = reinterpret_cast<T*>(smem + L.q);
  T* const sK = reinterpret_cast<T*>(smem + L.k);
  T* const sV = reinterpret_cast<T*>(smem + L.v);
  T* const sDN = reinterpret_cast<T*>(smem + L.dn);
  T* const sA = reinterpret_cast<T*>(smem + L.A);
  T* const sB = reinterpret_cast<T*>(smem + L.B);
  T* const sS = reinterpret_cast<T*>(smem + L.S);
  T* const sdS = reinterpret_cast<T*>(smem + L.dS);
  T* const sU = reinterpret_cast<T*>(smem + L.u);
  float* const sDXt = reinterpret_cast<float*>(smem + L.dxt);
  float* const sVec = reinterpret_cast<float*>(smem + L.vec);
  float* const sInv = reinterpret_cast<float*>(smem + L.inv);
  float* const sDden = reinterpret_cast<float*>(smem + L.dden);
  float* const sScr = reinterpret_cast<float*>(smem + L.scr);
  float* const sDqc = reinterpret_cast<float*>(smem + L.dqc);
  auto vec = [&](BVec which) { return sVec + int(which) * D; };

  const int seg_id = blockIdx.x, h = blockIdx.y, tid = threadIdx.x, warp = tid / 32;
  const bool lead = blockIdx.z == 0;  // the split that takes the dden / dz terms
  const int v0 = blockIdx.z * Dv;      // its first value column
  const gla::SegInfo seg = gla::get_seg(p, seg_id);
  const gla::SeqInfo sq = gla::get_seq<C>(p, seg.n);
  const int hk = h / (p.H / p.Hkv);
  const T* q_base = static_cast<const T*>(p.q) + sq.b * p.q_batch_stride + h * p.q_head_stride;
  const T* k_base = static_cast<const T*>(p.k) + sq.b * p.k_batch_stride + hk * p.k_head_stride;
  const T* v_base = static_cast<const T*>(p.v) + sq.b * p.v_batch_stride + hk * p.v_head_stride + v0;
  const T* y_base = static_cast<const T*>(P.y) + h * D;
  const T* dy_base = static_cast<const T*>(P.dy) + h * D;
  const T* qp_base = static_cast<const T*>(F.qprime) + h * D;
  const T* kp_base = lawcat_bwd_reads_kprime(D) ? static_cast<const T*>(F.kprime) + h * D : nullptr;
  const float* g_base = F.gate_cumsum + hk * D;
  const Lane ln;

  stage_head_constants<Tr, kWp>(F, h, sFq, sFk, sWphi);
  VStateTile<Tr> dS;  // dL/dS after the current chunk, columns [v0, v0 + Dv)
  dS.load(p.seg_S + (size_t(seg_id) * p.H + h) * D * D + v0, D);
  for (int f = tid; f < D; f += Tr::kThreads) {
    vec(bDz)[f] = lead ? p.seg_z[(size_t(seg_id) * p.H + h) * D + f] : 0.f;
    vec(bDb)[f] = 0.f;
  }
  for (int i = tid; i < 2 * kDqEdgeRows * D; i += Tr::kThreads) sDqc[i] = 0.f;  // no chunk after the segment's last yet

  // dW_φ [D x D/2] of this head: warp -> (16-row m-tile, n-tiles); added to global memory per
  // chunk (fp32 vector atomics) rather than held over the segment: at D = 128 those 32 registers
  // per thread were the difference between spilling and not.
  constexpr int kWPM = Tr::kWarps / (D / 16), kWNT = (Dh / 8) / kWPM;
  const int wm0 = (warp / kWPM) * 16, wn0 = (warp % kWPM) * kWNT * 8;
  float* const dwphi = P.dwphi + size_t(h) * D * Dh;
  // conv filter gradients: thread -> (side, channel, half of the chunk's rows), every tap, so one
  // pass over the rows with a sliding window of x serves all kWp taps. Sides: both at D = 64,
  // this CTA's at D = 128 (the cluster pair: split 0 q, split 1 k).
  constexpr int kFSides = BwdLayout<Tr, kWp>::kBothSides ? 2 : 1, kFParts = Tr::kThreads / (kFSides * D);
  static_assert(kFParts * kFSides * D == Tr::kThreads && C % kFParts == 0, "filter-gradient mapping");
  const int fch = tid % D, fpart = tid / (kFSides * D);
  const bool fq_side = kFSides == 2 ? (tid / D) % 2 == 0 : lead;
  float dconv[kWp] = {};

  // output-tile mappings: C x D (X, Y, dx~) and C x Dv (dv): 16-row band, half of the columns
  constexpr int kNT = D / 8 / Tr::kAW, kNTv = Dv / 8 / Tr::kAW;
  const int om0 = (warp / Tr::kAW) * 16, on0 = (warp % Tr::kAW) * (D / Tr::kAW);
  const int onv0 = (warp % Tr::kAW) * (Dv / Tr::kAW);
  constexpr int kRows = C / Tr::kWarps;  // rows per warp for the dden / dN row work
  // D = 128: the two splits of a (segment, head) are one cluster; after step 5 each adds the
  // other's partial du of one side (split 0: q, split 1: k) and runs steps 6-7 for that side only.
  constexpr bool kPair = VS::kSplit == 2;
  constexpr bool kReadFeatures = lawcat_bwd_reads_kprime(D);  // Q', K' from the forward (else recomputed)
  static_assert(BwdLayout<Tr, kWp>::kBothSides || kPair, "steps 6-7: both sides at once, or one per split");
  if constexpr (kPair) cluster_arrive();  // (each wait below pairs with the arrive before it)

  for (int c = seg.c1 - 1; c >= seg.c0; --c) {
    const int t0 = c * C, valid = min(C, sq.len - t0);
    const size_t chunk_at = size_t(sq.chunk0 + c) * p.H + h;
    __syncthreads();  // the previous chunk's readers are done
    if constexpr (kPair) cluster_wait();  // the partner is done reading our du of the previous chunk
    {
      constexpr int kPerRowV = Dv / kVec, kPerRow = D / kVec;
      load_raw_rows<Tr, kWp>(sXk, k_base, p.k_row_stride, sq, t0, C);
      load_raw_rows<Tr, kWp>(sXq, q_base, p.q_row_stride, sq, t0, C);
      for (int i = tid; i < C * kPerRowV; i += Tr::kThreads) {
        const int r = i / kPerRowV, cv = (i - r * kPerRowV) * kVec;
        const bool ok = r < valid;
        cp_async16(sV + r * LdV + cv, v_base + (sq.row0 + (ok ? t0 + r : 0)) * p.v_row_stride + cv, ok);
        cp_async16(sDN + r * LdV + cv, dy_base + size_t(sq.tok0 + (ok ? t0 + r : 0)) * p.H * D + v0 + cv, ok);
      }
      if constexpr (kReadFeatures)
        for (int i = tid; i < C * kPerRow; i += Tr::kThreads) {  // Q', K' as the forward saved them (0 past the end)
          const int r = i / kPerRow, cv = (i - r * kPerRow) * kVec;
          const bool ok = r < valid;
          const size_t row = size_t(sq.tok0 + (ok ? t0 + r : 0)) * p.H * D;
          cp_async16(sQ + r * LdX + cv, qp_base + row + cv, ok);
          cp_async16(sK + r * LdX + cv, kp_base + row + cv, ok);
        }
      load_gate_rows<Tr>(sG, g_base, p, sq, t0, C, valid);
    }
    {  // 1 / den and dden = -(dy . y) / den over the full rows (dden: split 0 only; 0 past the end)
      constexpr int kPer = D / 32;
      const int lane = tid & 31, rl = warp * kRows + lane;  // lane < kRows: the den of row rl
      const float den = lane < kRows && rl < valid ? F.den[size_t(sq.tok0 + t0 + rl) * p.H + h] : 0.f;
      if (lane < kRows) sInv[rl] = den != 0.f ? 1.f / den : 0.f;
      float dd[kRows];
#pragma unroll
      for (int i = 0; i < kRows; ++i) {
        const int r = warp * kRows + i;
        dd[i] = 0.f;
        if (lead && p.normalize && r < valid) {
          const size_t at = size_t(sq.tok0 + t0 + r) * p.H * D + lane * kPer;
#pragma unroll
          for (int e = 0; e < kPer; e += 2) {
            const float2 a = ld2(dy_base + at + e), b = ld2(y_base + at + e);
            dd[i] = fmaf(a.x, b.x, fmaf(a.y, b.y, dd[i]));
          }
        }
      }
#pragma unroll
      for (int i = 0; i < kRows; ++i) {
        const int r = warp * kRows + i;
        const float x = warp_sum(dd[i]), dn = __shfl_sync(0xffffffffu, den, i);
        if (lane == 0) sDden[r] = x == 0.f ? 0.f : -x / dn;
      }
    }
    cp_async_wait_all();
    __syncthreads();
    // ---- 1. reference point and per-feature scales ----
    {
      const int f = tid;
      float G0 = 0.f, GC = 0.f;
      if (f < D) { G0 = sG[f]; GC = sG[(valid - 1) * LdG + f]; }
      const bool extreme = __syncthreads_or(f < D && G0 - GC > Tr::kMaxDrop);
      if (extreme && lead && tid == 0 && P.extreme_chunks != nullptr) atomicAdd(P.extreme_chunks, 1);
      if (f < D) {
        const float ref = 0.5f * (G0 + GC), eq = ex2(ref), post = ex2(GC - ref);
        const float ez = eq * F.z_chunks[chunk_at * D + f], dz = vec(bDz)[f];
        vec(bRef)[f] = ref; vec(bEq)[f] = eq; vec(bPost)[f] = post; vec(bEz)[f] = ez;
        vec(bDzp)[f] = post * dz;
        vec(bCarry)[f] = post * ez * dz;
      }
    }
    __syncthreads();
    // ---- 2. e^r S0 and dS' = e^{G_C - r} dS (T), the carry's S part; dN ----
    {
      const float* eq = vec(bEq);
      const float* post = vec(bPost);
      const float* S0 = F.state_chunks + chunk_at * D * D + v0;
      float cp[2] = {0.f, 0.f};
      const int f0 = dS.m0() + ln.gr;
#pragma unroll
      for (int j = 0; j < VS::kStateNT; ++j) {
        const float(&a)[4] = dS.acc[j];
        const int vc = dS.n0() + 8 * j + 2 * ln.gc;
        const float2 s0 = *reinterpret_cast<const float2*>(S0 + f0 * D + vc);
        const float2 s8 = *reinterpret_cast<const float2*>(S0 + (f0 + 8) * D + vc);
        const float e0 = eq[f0], e8 = eq[f0 + 8];
        st2(sS + f0 * LdV + vc, s0.x * e0, s0.y * e0);
        st2(sS + (f0 + 8) * LdV + vc, s8.x * e8, s8.y * e8);
        cp[0] = fmaf(s0.x * e0, a[0], fmaf(s0.y * e0, a[1], cp[0]));
        cp[1] = fmaf(s8.x * e8, a[2], fmaf(s8.y * e8, a[3], cp[1]));
        st2(sdS + f0 * LdV + vc, a[0] * post[f0], a[1] * post[f0]);
        st2(sdS + (f0 + 8) * LdV + vc, a[2] * post[f0 + 8], a[3] * post[f0 + 8]);
      }
#pragma unroll
      for (int hr = 0; hr < 2; ++hr) {
        cp[hr] += __shfl_xor_sync(0xffffffffu, cp[hr], 1);
        cp[hr] += __shfl_xor_sync(0xffffffffu, cp[hr], 2);
      }
      if (ln.gc == 0) {
        atomicAdd(&vec(bCarry)[f0], post[f0] * cp[0]);
        atomicAdd(&vec(bCarry)[f0 + 8], post[f0 + 8] * cp[1]);
      }
    }
#pragma unroll
    for (int i = 0; i < kRows; ++i) {  // dN = dy / den, this warp's rows (0 past the end)
      const int r = warp * kRows + i, col = 2 * (tid & 31);
      const float iv = sInv[r];
      const float2 a = ld2(sDN + r * LdV + col);
      st2(sDN + r * LdV + col, a.x * iv, a.y * iv);
    }
    if constexpr (!kReadFeatures) {  // Q', K' recomputed: warps 0-3 the q bands, 4-7 the k bands
      const bool is_k = warp >= 4;
      feature_map_band<Tr, kWp, true>(is_k ? sXk : sXq, is_k ? sFk : sFq, sWphi, sG, vec(bRef), nullptr,
                                      is_k ? sK : sQ, (warp & 3) * 16, valid, is_k, true, nullptr, nullptr);
    }
    __syncthreads();
    // ---- 3. A = mask(Q' K'^T), B = mask(dN v^T + dden) (T) ----
    {
      constexpr int kNTA = 8 / Tr::kAW;
      const int i = warp / Tr::kAW, n0 = (warp % Tr::kAW) * 8 * kNTA;
      if (n0 <= 16 * i + 15) {
        float acc[kNTA][4] = {}, bcc[kNTA][4] = {};
        tile_mma_smem<T, kNTA, false, false>(acc, sQ, LdX, sK, LdX, 16 * i, n0, 0, D);
        tile_mma_smem<T, kNTA, false, false>(bcc, sDN, LdV, sV, LdV, 16 * i, n0, 0, Dv);
#pragma unroll
        for (int j = 0; j < kNTA; ++j) {
          tile_for_each(acc[j], 16 * i, n0 + 8 * j, [&](int r, int cc, float& x) { if (cc > r) x = 0.f; });
          tile_for_each(bcc[j], 16 * i, n0 + 8 * j, [&](int r, int cc, float& x) { x = cc > r ? 0.f : x + sDden[r]; });
          st2(sA + (16 * i + ln.gr) * LdA + n0 + 8 * j + 2 * ln.gc, acc[j][0], acc[j][1]);
          st2(sA + (16 * i + ln.gr + 8) * LdA + n0 + 8 * j + 2 * ln.gc, acc[j][2], acc[j][3]);
          st2(sB + (16 * i + ln.gr) * LdA + n0 + 8 * j + 2 * ln.gc, bcc[j][0], bcc[j][1]);
          st2(sB + (16 * i + ln.gr + 8) * LdA + n0 + 8 * j + 2 * ln.gc, bcc[j][2], bcc[j][3]);
        }
      }
    }
    __syncthreads();
    // ---- 4. X (q side), dv, the dS update, Y (k side); du_q, du_k in registers ----
    const float sign = on0 < Dh ? 1.f : -1.f;  // softmax(u) half or softmax(-u) half
    // Softmax backward over this warp's half of the features: du = sign (w - p sum_half w),
    // w = φ dφ (rows gr: [.][0..1], gr + 8: [.][2..3]; a quad holds a row of the half).
    auto softmax_bwd = [&](const float (&w)[kNT][4], const uint32_t (&pp)[kNT][2], uint32_t (&du)[kNT][2]) {
      float ws[2] = {0.f, 0.f};
#pragma unroll
      for (int j = 0; j < kNT; ++j) { ws[0] += w[j][0] + w[j][1]; ws[1] += w[j][2] + w[j][3]; }
#pragma unroll
      for (int hr = 0; hr < 2; ++hr) {
        ws[hr] += __shfl_xor_sync(0xffffffffu, ws[hr], 1);
        ws[hr] += __shfl_xor_sync(0xffffffffu, ws[hr], 2);
      }
#pragma unroll
      for (int j = 0; j < kNT; ++j)
#pragma unroll
        for (int hr = 0; hr < 2; ++hr) {
          const float2 pv = unpack2(pp[j][hr], (T*)nullptr);
          du[j][hr] = pack2(make_float2(sign * (w[j][2 * hr] - pv.x * ws[hr]), sign * (w[j][2 * hr + 1] - pv.y * ws[hr])),
                            (T*)nullptr);
        }
    };
    uint32_t duk[kNT][2], pkp[kNT][2];
    T* const sDuq = sS;  // du_q [C x LdX] over e^r S0, dead once every warp's X is done
    {  // X = B K' + dN (e^r S0)^T + dden e^r z0;  w = Q' X -> G's tile;  p_q = Q' e^{r-G}, p_k = K' e^{G-r}
      float acc[kNT][4] = {};
      uint32_t pqp[kNT][2], duq[kNT][2];
      tile_mma_smem<T, kNT, false, true>(acc, sB, LdA, sK, LdX, om0, on0, 0, om0 + 16);
      tile_mma_smem<T, kNT, false, false>(acc, sDN, LdV, sS, LdV, om0, on0, 0, Dv);
      __syncthreads();  // e^r S0 is read: du_q goes there (registers are short at D = 128)
      const float* ez = vec(bEz);
      const float* ref = vec(bRef);
#pragma unroll
      for (int j = 0; j < kNT; ++j)
#pragma unroll
        for (int hr = 0; hr < 2; ++hr) {
          const int r = om0 + ln.gr + 8 * hr, f = on0 + 8 * j + 2 * ln.gc;
          const float2 qv = ld2(sQ + r * LdX + f), kv = ld2(sK + r * LdX + f);
          float2* gp = reinterpret_cast<float2*>(sG + r * LdG + f);
          const float2 g = *gp;
          const float dd = sDden[r];
          float& x0 = acc[j][2 * hr];
          float& x1 = acc[j][2 * hr + 1];
          x0 = qv.x * fmaf(dd, ez[f], x0);
          x1 = qv.y * fmaf(dd, ez[f + 1], x1);
          *gp = make_float2(x0, x1);
          const float gx = g.x - ref[f], gy = g.y - ref[f + 1];
          pqp[j][hr] = pack2(make_float2(qv.x * ex2(-gx), qv.y * ex2(-gy)), (T*)nullptr);
          pkp[j][hr] = pack2(make_float2(kv.x * ex2(gx), kv.y * ex2(gy)), (T*)nullptr);
        }
      softmax_bwd(acc, pqp, duq);
#pragma unroll
      for (int j = 0; j < kNT; ++j)
#pragma unroll
        for (int hr = 0; hr < 2; ++hr)
          *reinterpret_cast<uint32_t*>(sDuq + (om0 + ln.gr + 8 * hr) * LdX + on0 + 8 * j + 2 * ln.gc) = duq[j][hr];
    }
    {  // dv = A^T dN + K' dS'
      float acc[kNTv][4] = {};
      tile_mma_smem<T, kNTv, true, true>(acc, sA, LdA, sDN, LdV, om0, onv0, om0, C);
      tile_mma_smem<T, kNTv, false, true>(acc, sK, LdX, sdS, LdV, om0, onv0, 0, D);
      float* dv = P.dv + size_t(sq.tok0 + t0) * p.Hkv * D + hk * D + v0;
#pragma unroll
      for (int hr = 0; hr < 2; ++hr) {
        const int r = om0 + ln.gr + 8 * hr;
        if (r >= valid) continue;
#pragma unroll
        for (int j = 0; j < kNTv; ++j)
          atomic_add2(dv + size_t(r) * p.Hkv * D + onv0 + 8 * j + 2 * ln.gc, acc[j][2 * hr], acc[j][2 * hr + 1]);
      }
    }
    // dS <- e^r (e^{G_C - r} dS + Q'^T dN)
    dS.scale_rows(vec(bPost));
    tile_mma_smem<T, VS::kStateNT, true, true>(dS.acc, sQ, LdX, sDN, LdV, dS.m0(), dS.n0(), 0, C);
    dS.scale_rows(vec(bEq));
    {  // Y = B^T Q' + v dS'^T + e^{G_C-r} dz;  wk = K' Y; gate term w - wk; the carry's K' part
      float acc[kNT][4] = {};
      tile_mma_smem<T, kNT, false, false>(acc, sV, LdV, sdS, LdV, om0, on0, 0, Dv);
      const float* dzp = vec(bDzp);
      float cs[kNT][2] = {};
#pragma unroll
      for (int j = 0; j < kNT; ++j)
#pragma unroll
        for (int hr = 0; hr < 2; ++hr) {
          const int r = om0 + ln.gr + 8 * hr, f = on0 + 8 * j + 2 * ln.gc;
          const float2 kv = ld2(sK + r * LdX + f);
          cs[j][0] = fmaf(kv.x, acc[j][2 * hr] + dzp[f], cs[j][0]);
          cs[j][1] = fmaf(kv.y, acc[j][2 * hr + 1] + dzp[f + 1], cs[j][1]);
        }
#pragma unroll
      for (int j = 0; j < kNT; ++j)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          float x = cs[j][e];
          x += __shfl_xor_sync(0xffffffffu, x, 4);
          x += __shfl_xor_sync(0xffffffffu, x, 8);
          x += __shfl_xor_sync(0xffffffffu, x, 16);
          if (ln.gr == 0) atomicAdd(&vec(bCarry)[on0 + 8 * j + 2 * ln.gc + e], x);
        }
      tile_mma_smem<T, kNT, true, true>(acc, sB, LdA, sQ, LdX, om0, on0, om0, C);
#pragma unroll
      for (int j = 0; j < kNT; ++j)
#pragma unroll
        for (int hr = 0; hr < 2; ++hr) {
          const int r = om0 + ln.gr + 8 * hr, f = on0 + 8 * j + 2 * ln.gc;
          const float2 kv = ld2(sK + r * LdX + f);
          float& y0 = acc[j][2 * hr];
          float& y1 = acc[j][2 * hr + 1];
          y0 = kv.x * (y0 + dzp[f]);
          y1 = kv.y * (y1 + dzp[f + 1]);
          float2* gt = reinterpret_cast<float2*>(sG + r * LdG + f);
          const float2 w = *gt;
          *gt = make_float2(w.x - y0, w.y - y1);
        }
      softmax_bwd(acc, pkp, duk);
    }
    {
      const float s = weighted_colsum<Tr>(sQ, sDden, sScr);  // (syncs: every read of Q', K', v .. dS is done after it)
      if (tid < D) vec(bDz)[tid] = vec(bEq)[tid] * (vec(bDzp)[tid] + s);
    }
#pragma unroll
    for (int j = 0; j < kNT; ++j)
#pragma unroll
      for (int hr = 0; hr < 2; ++hr)  // du_k over the dead K'
        *reinterpret_cast<uint32_t*>(sK + (om0 + ln.gr + 8 * hr) * LdX + on0 + 8 * j + 2 * ln.gc) = duk[j][hr];
    __syncthreads();
    // ---- 5. du = du_full[:, :Dh] + du_full[:, Dh:] (du_q into the dead Q', du_k in place);
    //         d log α = suffix sums + carry ----
    for (int i = tid; i < C * Dh; i += Tr::kThreads) {
      const int t = i / Dh, j = i - t * Dh;
      sQ[t * LdX + j] = from_float<T>(to_float(sDuq[t * LdX + j]) + to_float(sDuq[t * LdX + Dh + j]));
      sK[t * LdX + j] = from_float<T>(to_float(sK[t * LdX + j]) + to_float(sK[t * LdX + Dh + j]));
    }
    gla::column_scan<Tr, true>(sG, LdG, sScr);  // ends with __syncthreads
    {  // d logit = d log α sigmoid(-logit) / tau; db = its sum over rows
      const size_t at = size_t(sq.tok0 + t0) * p.Hkv * D + hk * D;
      const float* carry = vec(bCarry);
      float4 db = make_float4(0.f, 0.f, 0.f, 0.f);
      constexpr int kV4 = D / 4;
      const int cv = (tid % kV4) * 4;  // the thread's columns are fixed: kThreads is a multiple of D / 4
      for (int r = tid / kV4; r < valid; r += Tr::kThreads / kV4) {
        const float4 g = *reinterpret_cast<const float4*>(sG + r * LdG + cv);
        const float4 fac = *reinterpret_cast<const float4*>(F.gate_dlogit + at + size_t(r) * p.Hkv * D + cv);
        const float4 d = make_float4((g.x + carry[cv]) * fac.x, (g.y + carry[cv + 1]) * fac.y,
                                     (g.z + carry[cv + 2]) * fac.z, (g.w + carry[cv + 3]) * fac.w);
        atomic_add4(P.dlogit + at + size_t(r) * p.Hkv * D + cv, d);
        db.x += d.x; db.y += d.y; db.z += d.z; db.w += d.w;
      }
      atomicAdd(&vec(bDb)[cv], db.x);
      atomicAdd(&vec(bDb)[cv + 1], db.y);
      atomicAdd(&vec(bDb)[cv + 2], db.z);
      atomicAdd(&vec(bDb)[cv + 3], db.w);
    }
    // ---- 6-7. per side: u = conv(x), dx~ = du W_φ^T (fp32), dW_φ += u^T du, causal conv backward ----
    // Both sides at once where the dead region holds both (D = 64), else one per CTA of the pair.
    T* const dq_rows = static_cast<T*>(P.dq) + size_t(sq.tok0) * p.H * D + h * D;
    // dq carry: this chunk's conv rows before t0 (for chunk c - 1) / the next chunk's into ours
    float* const carry_out = sDqc + ((c & 1) ^ 1) * kDqEdgeRows * D;
    const float* const carry_in = sDqc + (c & 1) * kDqEdgeRows * D;
    const bool has_next = (c + 1) * C < sq.len;
    float* const edge = P.dq_edge + (size_t(seg_id) * p.H + h) * 2 * kDqEdgeRows * D;  // part 0 of ours
    float* const edge_next = edge + size_t(p.H) * 2 * kDqEdgeRows * D + kDqEdgeRows * D;  // part 1 of segment + 1
    float* const dk_rows = P.dk + size_t(sq.tok0) * p.Hkv * D + hk * D;
    auto sides_bwd = [&](auto q_tag, auto k_tag) {
      constexpr bool kQ = decltype(q_tag)::value, kK = decltype(k_tag)::value;
      T* const uq = sU;
      float* const gq = sDXt;
      T* const uk = kQ ? reinterpret_cast<T*>(smem + L.u2) : sU;
      float* const gk = kQ ? reinterpret_cast<float*>(smem + L.dxt2) : sDXt;
      for (int i = tid; i < C * Dh; i += Tr::kThreads) {  // u (same fp32 order as the feature map's conv)
        const int r = i / Dh, col = (i - r * Dh) * 2;
        float2 a = make_float2(0.f, 0.f), b = a;
#pragma unroll
        for (int j = 0; j < kWp; ++j) {
          if constexpr (kQ) {
            const float2 x = ld2(sXq + (r + j) * LdX + col), w = *reinterpret_cast<const float2*>(sFq + j * D + col);
            a.x = fmaf(w.x, x.x, a.x);
            a.y = fmaf(w.y, x.y, a.y);
          }
          if constexpr (kK) {
            const float2 x = ld2(sXk + (r + j) * LdX + col), w = *reinterpret_cast<const float2*>(sFk + j * D + col);
            b.x = fmaf(w.x, x.x, b.x);
            b.y = fmaf(w.y, x.y, b.y);
          }
        }
        if constexpr (kQ) *reinterpret_cast<uint32_t*>(uq + r * LdX + col) = pack2(a, (T*)nullptr);
        if constexpr (kK) *reinterpret_cast<uint32_t*>(uk + r * LdX + col) = pack2(b, (T*)nullptr);
      }
      auto dxt = [&](const T* du, float* dst) {  // dx~ = du W_φ^T, fp32 (ln 2: W_φ is staged in log2 units)
        float acc[kNT][4] = {};
        tile_mma_smem<T, kNT, false, false>(acc, du, LdX, sWphi, LdW, om0, on0, 0, Dh);
#pragma unroll
        for (int j = 0; j < kNT; ++j)
#pragma unroll
          for (int hr = 0; hr < 2; ++hr)
            *reinterpret_cast<float2*>(dst + (om0 + ln.gr + 8 * hr) * LdG + on0 + 8 * j + 2 * ln.gc) =
                make_float2(acc[j][2 * hr] * kLn2, acc[j][2 * hr + 1] * kLn2);
      };
      if constexpr (kQ) dxt(sQ, gq);
      if constexpr (kK) dxt(sK, gk);
      __syncthreads();
      {
        float dW[kWNT][4] = {};
        if constexpr (kQ) tile_mma_smem<T, kWNT, true, true>(dW, uq, LdX, sQ, LdX, wm0, wn0, 0, C);
        if constexpr (kK) tile_mma_smem<T, kWNT, true, true>(dW, uk, LdX, sK, LdX, wm0, wn0, 0, C);
#pragma unroll
        for (int j = 0; j < kWNT; ++j)
#pragma unroll
          for (int hr = 0; hr < 2; ++hr)
            atomic_add2(dwphi + (wm0 + ln.gr + 8 * hr) * Dh + wn0 + 8 * j + 2 * ln.gc, dW[j][2 * hr], dW[j][2 * hr + 1]);
      }
      constexpr int kV4 = D / 4;
      for (int i = tid; i < (C + kHalo) * kV4; i += Tr::kThreads) {  // dx rows of the chunk and kHalo before
        const int rho = i / kV4, cv = (i - rho * kV4) * 4, tau = t0 + rho - kHalo;
        if (tau < 0 || rho - kHalo >= valid) continue;
        float4 a = make_float4(0.f, 0.f, 0.f, 0.f), b = a;
#pragma unroll
        for (int j = 0; j < kWp; ++j) {
          const int r = rho - j;
          if (r < 0 || r >= valid) continue;
          if constexpr (kQ) {
            const float4 g = *reinterpret_cast<const float4*>(gq + r * LdG + cv);
            const float4 w = *reinterpret_cast<const float4*>(sFq + j * D + cv);
            a.x = fmaf(w.x, g.x, a.x); a.y = fmaf(w.y, g.y, a.y); a.z = fmaf(w.z, g.z, a.z); a.w = fmaf(w.w, g.w, a.w);
          }
          if constexpr (kK) {
            const float4 g = *reinterpret_cast<const float4*>(gk + r * LdG + cv);
            const float4 w = *reinterpret_cast<const float4*>(sFk + j * D + cv);
            b.x = fmaf(w.x, g.x, b.x); b.y = fmaf(w.y, g.y, b.y); b.z = fmaf(w.z, g.z, b.z); b.w = fmaf(w.w, g.w, b.w);
          }
        }
        if constexpr (kQ) {
          const int r = rho - kHalo, tail = r - (C - kHalo);  // tail >= 0: the next chunk adds in
          if (r < 0) {  // a row of chunk c - 1: carried, or across the segment boundary
            if (c > seg.c0) *reinterpret_cast<float4*>(carry_out + rho * D + cv) = a;
            else *reinterpret_cast<float4*>(edge + rho * D + cv) = a;
          } else {
            if (tail >= 0) {
              const float4 ci = *reinterpret_cast<const float4*>(carry_in + tail * D + cv);
              a.x += ci.x; a.y += ci.y; a.z += ci.z; a.w += ci.w;
            }
            if (tail >= 0 && c == seg.c1 - 1 && has_next)  // the next segment's first chunk adds in
              *reinterpret_cast<float4*>(edge_next + tail * D + cv) = a;
            else
              *reinterpret_cast<uint2*>(dq_rows + size_t(tau) * p.H * D + cv) =
                  make_uint2(pack2(make_float2(a.x, a.y), (T*)nullptr), pack2(make_float2(a.z, a.w), (T*)nullptr));
          }
        }
        if constexpr (kK) atomic_add4(dk_rows + size_t(tau) * p.Hkv * D + cv, b);
      }
      {  // filter gradients: dconv[j] += sum_r dx~[r][ch] x[r + j][ch] over this thread's rows
        const bool on_q = kQ && (!kK || fq_side);
        const float* g = on_q ? gq : gk;
        const T* x = (on_q ? sXq : sXk) + fch;
        constexpr int kR = C / kFParts;
        const int r0 = fpart * kR;
        float win[kWp];
#pragma unroll
        for (int j = 0; j < kWp - 1; ++j) win[j] = to_float(x[(r0 + j) * LdX]);
#pragma unroll
        for (int i = 0; i < kR; ++i) {
          const int r = r0 + i;
          win[kWp - 1] = to_float(x[(r + kWp - 1) * LdX]);
          const float gv = r < valid ? g[r * LdG + fch] : 0.f;
#pragma unroll
          for (int j = 0; j < kWp; ++j) dconv[j] = fmaf(gv, win[j], dconv[j]);
#pragma unroll
          for (int j = 0; j < kWp - 1; ++j) win[j] = win[j + 1];
        }
      }
      __syncthreads();  // u and dx~ are reused by the next side / chunk
    };
    if constexpr (BwdLayout<Tr, kWp>::kBothSides) {
      sides_bwd(std::true_type{}, std::true_type{});
    } else {
      // du of this split's side += the partner's (its half-sums are done once both arrived)
      cluster_arrive();
      cluster_wait();
      T* const du = lead ? sQ : sK;
      const T* other = cooperative_groups::this_cluster().map_shared_rank(du, int(blockIdx.z) ^ 1);
      for (int i = tid; i < C * (Dh / 2); i += Tr::kThreads) {
        const int t = i / (Dh / 2), j = (i - t * (Dh / 2)) * 2;
        const float2 a = ld2(du + t * LdX + j), b = ld2(other + t * LdX + j);
        st2(du + t * LdX + j, a.x + b.x, a.y + b.y);
      }
      cluster_arrive();  // done reading the partner's shared memory
      __syncthreads();
      if (lead) sides_bwd(std::true_type{}, std::false_type{});
      else sides_bwd(std::false_type{}, std::true_type{});
    }
  }
  if constexpr (kPair) cluster_wait();  // the partner no longer reads our shared memory

  // ---- segment totals of the weight gradients ----
  __syncthreads();
  for (int f = tid; f < D; f += Tr::kThreads) atomicAdd(&P.db[size_t(hk) * D + f], vec(bDb)[f]);
  float* const dconv_dst = (fq_side ? P.dconv_q : P.dconv_k) + (size_t(h) * D + fch) * F.width;
#pragma unroll
  for (int j = 0; j < kWp; ++j)  // (the first kWp - width taps are the filters' zero padding)
    if (j >= kWp - F.width) atomicAdd(&dconv_dst[j - (kWp - F.width)], dconv[j]);
}

// dq rows across segment boundaries: the sum of the two partial rows the gradient pass left in
// dq_edge (grid: segments x heads; segments that start a sequence have none).
template <class Tr, int kWp>
__global__ void __launch_bounds__(128) lawcat_dq_edge_kernel(const LawcatBwdParams P) {
  using T = typename Tr::T;
  constexpr int D = Tr::kD, kHalo = kWp - 1;
  const GlaParams& p = P.fwd.gla;
  const int seg_id = blockIdx.x, h = blockIdx.y;
  const gla::SegInfo seg = gla::get_seg(p, seg_id);
  if (seg.c0 <= 0 || seg.c0 >= seg.c1) return;
  const gla::SeqInfo sq = gla::get_seq<Tr::kC>(p, seg.n);
  const float* e = P.dq_edge + (size_t(seg_id) * p.H + h) * 2 * kDqEdgeRows * D;
  for (int i = threadIdx.x; i < kHalo * D; i += blockDim.x) {
    const int r = i / D, f = i - r * D, tau = seg.c0 * Tr::kC - kHalo + r;
    static_cast<T*>(P.dq)[(size_t(sq.tok0) + tau) * p.H * D + h * D + f] =
        from_float<T>(e[r * D + f] + e[(kDqEdgeRows + r) * D + f]);
  }
}

}  // namespace lawcat::kernels::fused
