// Backward kernels.
//
// Reverse walker (one CTA per (segment, head), chunks in reverse, dS [F x V] fp32 in
// registers):   dS_prev = e^{G_C} dS + (q e^{G})^T dN,   dz_prev = e^{G_C} dz + (q e^{G})^T dden
// with dN_t = dy_t / den_t and dden_t = -(dy_t . y_t) / den_t (den, dy.y from the
// forward recompute). kStore = false: segment-local pass from dS = 0 at the segment end
// (skipped for the first segment of a sequence); kStore = true: from the combined dS at
// the segment end, writing dS at every chunk END, and ds0 / dz0 at the sequence start.
//
// Chunk kernel (one CTA per (chunk, head), fully parallel), with S0 = state at the
// chunk start, dS = dL/dS at its end, A = the stored intra-chunk scores:
//   dA   = tril(dN v^T + dden)
//   dk_s = e^{e_j - G_s} [ e^{G_C - e_j} (dS v_s + dz) + sum_{t in later sub-chunks} dA_ts q_t e^{G_t - e_j} ]
//          + diagonal-block part (element-wise, products of decays)
//   dv_s = sum_t A_ts dN_t + (k_s e^{G_C - G_s}) dS
//   dq_t = e^{G_t - r_i} [ e^{r_i} (dN_t S0^T + dden_t z0) + sum_{s in earlier sub-chunks} dA_ts k_s e^{r_i - G_s} ]
//          + diagonal-block part
//   dg_u = sum_{t >= u in chunk} (q dq - k dk)_t + e^{G_C} (sum_v S0 dS + z0 dz) + sum_s k_s dk_inter_s
// dv and dg are per kv head: fp32 atomics over the query heads of the group.
#pragma once
#include "gla/gla_common.cuh"

namespace lawcat::kernels::gla {

// ---------------------------------------------------------------------------
template <class Tr>
struct RevSmem {
  using T = typename Tr::T;
  static constexpr int C = Tr::kC, D = Tr::kD;
  static constexpr size_t kQ = 0;
  static constexpr size_t kDN = kQ + smem_align(sizeof(T) * C * Tr::kLdE);
  static constexpr size_t kG = kDN + smem_align(sizeof(T) * C * Tr::kLdE);
  static constexpr size_t kEC = kG + smem_align(sizeof(float) * C * Tr::kLdF);
  static constexpr size_t kZ = kEC + smem_align(sizeof(float) * D);
  static constexpr size_t kGam = kZ + smem_align(sizeof(float) * D);
  static constexpr size_t kDen = kGam + smem_align(sizeof(float) * D);
  static constexpr size_t kDdn = kDen + smem_align(sizeof(float) * C);
  static constexpr size_t kO = kDdn + smem_align(sizeof(float) * C);               // f32 [NS][D] log offsets
  static constexpr size_t kZp = kO + smem_align(sizeof(float) * Tr::kNSub * D);
  static constexpr size_t kBytes = kZp + smem_align(sizeof(float) * Scan<Tr>::kScratch);
};

template <class Tr, bool kStore>
__global__ void __launch_bounds__(Tr::kThreads, Tr::kMinBlocks) gla_rev_walk_kernel(const GlaParams p) {
  using T = typename Tr::T;
  using L = RevSmem<Tr>;
  constexpr int C = Tr::kC, D = Tr::kD, LdE = Tr::kLdE, LdF = Tr::kLdF;
  extern __shared__ __align__(16) unsigned char smem[];
  T* sQ = reinterpret_cast<T*>(smem + L::kQ);
  T* sDN = reinterpret_cast<T*>(smem + L::kDN);
  float* sG = reinterpret_cast<float*>(smem + L::kG);
  float* sEC = reinterpret_cast<float*>(smem + L::kEC);
  float* sZ = reinterpret_cast<float*>(smem + L::kZ);
  float* sGam = reinterpret_cast<float*>(smem + L::kGam);
  float* sDen = reinterpret_cast<float*>(smem + L::kDen);
  float* sDdn = reinterpret_cast<float*>(smem + L::kDdn);
  float* sO = reinterpret_cast<float*>(smem + L::kO);
  float* sZp = reinterpret_cast<float*>(smem + L::kZp);

  const int seg_id = blockIdx.x, h = blockIdx.y, tid = threadIdx.x;
  const SegInfo seg = get_seg(p, seg_id);
  const SeqInfo sq = get_seq<C>(p, seg.n);
  if (!kStore && seg.c0 == 0) return;
  const int hk = h / (p.H / p.Hkv);
  const T* q_base = static_cast<const T*>(p.q) + sq.b * p.q_batch_stride + h * p.q_head_stride;
  const float* g_base = p.g + sq.b * p.g_batch_stride + hk * p.g_head_stride;
  const size_t state_elems = size_t(D) * D;

  StateTile<Tr> S;
  if (kStore) {
    S.load(p.seg_S + (size_t(seg_id) * p.H + h) * state_elems);
    for (int f = tid; f < D; f += Tr::kThreads) sZ[f] = p.seg_z[(size_t(seg_id) * p.H + h) * D + f];
  } else {
    S.zero();
    for (int f = tid; f < D; f += Tr::kThreads) { sZ[f] = 0.f; sGam[f] = 1.f; }
  }
  __syncthreads();

  for (int c = seg.c1 - 1; c >= seg.c0; --c) {
    const int row0 = sq.row0 + c * C, valid = min(C, sq.len - c * C);
    const size_t tok = size_t(sq.tok0) + size_t(c) * C;
    load_tile<Tr>(sQ, LdE, q_base + row0 * p.q_row_stride, p.q_row_stride, valid);
    load_tile<Tr>(sDN, LdE, static_cast<const T*>(p.dy) + (tok * p.H + h) * D, int64_t(p.H) * D, valid);
    load_tile<Tr>(sG, LdF, g_base + row0 * p.g_row_stride, p.g_row_stride, valid);
    for (int r = tid; r < C; r += Tr::kThreads) {
      const bool ok = r < valid;
      const float den = ok ? p.den[(tok + r) * p.H + h] : 1.f;
      sDen[r] = den;
      sDdn[r] = (ok && p.normalize) ? -p.dd[(tok + r) * p.H + h] / den : 0.f;
    }
    if (kStore) {
      const size_t chunk = size_t(sq.chunk0 + c);
      S.store(p.chunk_dS + (chunk * p.H + h) * state_elems);
      for (int f = tid; f < D; f += Tr::kThreads) p.chunk_dz[(chunk * p.H + h) * D + f] = sZ[f];
    }
    __syncthreads();
    column_scan_local16<Tr>(sG, LdF);
    for (int f = tid; f < D; f += Tr::kThreads) decay_tables<Tr>(sG, LdF, f, sEC, nullptr, nullptr, sO, nullptr);
    __syncthreads();
    for (int i = tid; i < C * D; i += Tr::kThreads) {
      const int r = i / D, f = i - r * D;
      sQ[r * LdE + f] = from_float<T>(to_float(sQ[r * LdE + f]) * __expf(sG[r * LdF + f] + sO[(r / 16) * D + f]));
      sDN[r * LdE + f] = from_float<T>(to_float(sDN[r * LdE + f]) / sDen[r]);
    }
    __syncthreads();
    column_sum_parts<Tr>(sQ, LdE, sZp, [&](int r, int) { return sDdn[r]; });
    if (!kStore)
      for (int f = tid; f < D; f += Tr::kThreads) sGam[f] *= sEC[f];
    S.for_each([&](int f, int v, float& x) { x *= sEC[f]; });
    tile_mma_smem<T, Tr::kStateNT, true, true>(S.acc, sQ, LdE, sDN, LdE, S.m0(), S.n0(), 0, C);
    __syncthreads();
    for (int f = tid; f < D; f += Tr::kThreads) sZ[f] = sEC[f] * sZ[f] + z_sum_parts<Tr>(sZp, f);
  }
  if (kStore) {
    if (seg.c0 == 0 && p.ds0 != nullptr) {
      S.store(p.ds0 + (size_t(seg.n) * p.H + h) * state_elems);
      for (int f = tid; f < D; f += Tr::kThreads) p.dz0[(size_t(seg.n) * p.H + h) * D + f] = sZ[f];
    }
  } else {
    S.store(p.seg_S + (size_t(seg_id) * p.H + h) * state_elems);
    for (int f = tid; f < D; f += Tr::kThreads) {
      p.seg_z[(size_t(seg_id) * p.H + h) * D + f] = sZ[f];
      p.seg_gamma[(size_t(seg_id) * p.H + h) * D + f] = sGam[f];
    }
  }
}

// ---------------------------------------------------------------------------
// Diagonal 16 x 16 blocks of dk (kDk) or dq, element-wise in fp32. One thread per
// (sub-chunk i, feature f); w[u] = prod_{x = 16i+u+1 .. t} alpha_x built up as t grows.
//   dk[16i+u][f] = sum_{t >= 16i+u} dA[t][16i+u] q[t][f] w[u]
//   dq[t][f]     = sum_{u <= t-16i} dA[t][16i+u] k[16i+u][f] w[u]
template <class Tr, bool kDk>
__device__ __forceinline__ void diag_bwd(const typename Tr::T* sQ, const typename Tr::T* sK, const float* sG,
                                         const float* sDA, float* out) {
  constexpr int D = Tr::kD, LdE = Tr::kLdE, LdF = Tr::kLdF, LdCF = Tr::kLdCF;
  for (int item = threadIdx.x; item < Tr::kNSub * D; item += Tr::kThreads) {
    const int i = item / D, f = item - i * D, b = 16 * i;
    float w[16], acc[16], kk[16];
#pragma unroll
    for (int u = 0; u < 16; ++u) {
      w[u] = 1.f;
      acc[u] = 0.f;
      kk[u] = kDk ? 0.f : to_float(sK[(b + u) * LdE + f]);
    }
#pragma unroll
    for (int tt = 0; tt < 16; ++tt) {
      const int t = b + tt;
      if (tt > 0) {
        const float a = __expf(sG[t * LdF + f] - sG[(t - 1) * LdF + f]);
#pragma unroll
        for (int u = 0; u < tt; ++u) w[u] *= a;
      }
      const float* da = sDA + t * LdCF + b;
      if (kDk) {
        const float qt = to_float(sQ[t * LdE + f]);
#pragma unroll
        for (int u = 0; u <= tt; ++u) acc[u] = fmaf(da[u] * qt, w[u], acc[u]);
      } else {
        float s = 0.f;
#pragma unroll
        for (int u = 0; u <= tt; ++u) s = fmaf(da[u] * kk[u], w[u], s);
        out[t * LdF + f] = s;
      }
    }
    if (kDk) {
#pragma unroll
      for (int u = 0; u < 16; ++u) out[(b + u) * LdF + f] = acc[u];
    }
  }
}

template <class Tr>
struct ChunkBwdSmem {
  using T = typename Tr::T;
  static constexpr int C = Tr::kC, D = Tr::kD, NS = Tr::kNSub;
  static constexpr size_t kQ = 0;
  static constexpr size_t kK = kQ + smem_align(sizeof(T) * C * Tr::kLdE);
  static constexpr size_t kV = kK + smem_align(sizeof(T) * C * Tr::kLdE);
  static constexpr size_t kDN = kV + smem_align(sizeof(T) * C * Tr::kLdE);
  static constexpr size_t kG = kDN + smem_align(sizeof(T) * C * Tr::kLdE);
  static constexpr size_t kAM = kG + smem_align(sizeof(float) * C * Tr::kLdF);     // T [C][LdCE]
  static constexpr size_t kDA = kAM + smem_align(sizeof(T) * C * Tr::kLdCE);       // f32 [C][LdCF]
  static constexpr size_t kAcc = kDA + smem_align(sizeof(float) * C * Tr::kLdCF);  // f32 [C][LdF] dg terms
  static constexpr size_t kAcc2 = kAcc + smem_align(sizeof(float) * C * Tr::kLdF); // f32 [C][LdF] diag parts
  static constexpr size_t kEr = kAcc2 + smem_align(sizeof(float) * C * Tr::kLdF);
  static constexpr size_t kEkd = kEr + smem_align(sizeof(float) * NS * D);
  static constexpr size_t kEC = kEkd + smem_align(sizeof(float) * NS * D);
  static constexpr size_t kZ0 = kEC + smem_align(sizeof(float) * D);
  static constexpr size_t kDZ = kZ0 + smem_align(sizeof(float) * D);
  static constexpr size_t kDgk = kDZ + smem_align(sizeof(float) * D);
  static constexpr size_t kDgk2 = kDgk + smem_align(sizeof(float) * D);
  static constexpr size_t kDen = kDgk2 + smem_align(sizeof(float) * D);
  static constexpr size_t kDdn = kDen + smem_align(sizeof(float) * C);
  static constexpr size_t kScan = kDdn + smem_align(sizeof(float) * C);
  static constexpr size_t kLogY = kScan + smem_align(sizeof(float) * Scan<Tr>::kScratch);  // f32 [NS][NS][D]
  static constexpr size_t kBytes = kLogY + smem_align(sizeof(float) * NS * NS * D);
};

template <class Tr>
__global__ void __launch_bounds__(Tr::kThreads, Tr::kMinBlocks) gla_bwd_chunk_kernel(const GlaParams p) {
  using T = typename Tr::T;
  using L = ChunkBwdSmem<Tr>;
  constexpr int C = Tr::kC, D = Tr::kD, NS = Tr::kNSub;
  constexpr int LdE = Tr::kLdE, LdF = Tr::kLdF, LdCE = Tr::kLdCE, LdCF = Tr::kLdCF;
  extern __shared__ __align__(16) unsigned char smem[];
  T* sQ = reinterpret_cast<T*>(smem + L::kQ);
  T* sK = reinterpret_cast<T*>(smem + L::kK);
  T* sV = reinterpret_cast<T*>(smem + L::kV);
  T* sDN = reinterpret_cast<T*>(smem + L::kDN);
  float* sG = reinterpret_cast<float*>(smem + L::kG);
  T* sAM = reinterpret_cast<T*>(smem + L::kAM);
  float* sDA = reinterpret_cast<float*>(smem + L::kDA);
  float* sAcc = reinterpret_cast<float*>(smem + L::kAcc);
  float* sAcc2 = reinterpret_cast<float*>(smem + L::kAcc2);
  float* sEr = reinterpret_cast<float*>(smem + L::kEr);
  float* sEkd = reinterpret_cast<float*>(smem + L::kEkd);
  float* sEC = reinterpret_cast<float*>(smem + L::kEC);
  float* sZ0 = reinterpret_cast<float*>(smem + L::kZ0);
  float* sDZ = reinterpret_cast<float*>(smem + L::kDZ);
  float* sDgk = reinterpret_cast<float*>(smem + L::kDgk);
  float* sDgk2 = reinterpret_cast<float*>(smem + L::kDgk2);
  float* sDen = reinterpret_cast<float*>(smem + L::kDen);
  float* sDdn = reinterpret_cast<float*>(smem + L::kDdn);
  float* sScan = reinterpret_cast<float*>(smem + L::kScan);
  float* sLogY = reinterpret_cast<float*>(smem + L::kLogY);

  const int h = blockIdx.y, tid = threadIdx.x, warp = tid / 32;
  int n, c;
  chunk_of(p, blockIdx.x, n, c);
  const SeqInfo sq = get_seq<C>(p, n);
  const int hk = h / (p.H / p.Hkv);
  const int row0 = sq.row0 + c * C, valid = min(C, sq.len - c * C);
  const size_t tok = size_t(sq.tok0) + size_t(c) * C;
  const size_t chunk = size_t(sq.chunk0 + c), slot = size_t(sq.slot0 + c);
  const size_t state_elems = size_t(D) * D;
  const float* S0 = p.chunk_S + (slot * p.H + h) * state_elems;   // [F][V] state at chunk start
  const float* dS = p.chunk_dS + (chunk * p.H + h) * state_elems;  // [F][V] dL/dS at chunk end

  // ---- 1. loads ----
  load_tile<Tr>(sQ, LdE, static_cast<const T*>(p.q) + sq.b * p.q_batch_stride + row0 * p.q_row_stride + h * p.q_head_stride,
                p.q_row_stride, valid);
  load_tile<Tr>(sK, LdE, static_cast<const T*>(p.k) + sq.b * p.k_batch_stride + row0 * p.k_row_stride + h * p.k_head_stride,
                p.k_row_stride, valid);
  load_tile<Tr>(sV, LdE, static_cast<const T*>(p.v) + sq.b * p.v_batch_stride + row0 * p.v_row_stride + hk * p.v_head_stride,
                p.v_row_stride, valid);
  load_tile<Tr>(sDN, LdE, static_cast<const T*>(p.dy) + (tok * p.H + h) * D, int64_t(p.H) * D, valid);
  load_tile<Tr>(sG, LdF, p.g + sq.b * p.g_batch_stride + row0 * p.g_row_stride + hk * p.g_head_stride,
                p.g_row_stride, valid);
  {
    const T* A = static_cast<const T*>(p.chunk_A) + (chunk * p.H + h) * C * C;
    constexpr int kVec = 16 / sizeof(T), kPerRow = C / kVec;
    for (int i = tid; i < C * kPerRow; i += Tr::kThreads) {
      const int r = i / kPerRow, cv = (i - r * kPerRow) * kVec;
      copy16(sAM + r * LdCE + cv, A + r * C + cv);
    }
  }
  for (int f = tid; f < D; f += Tr::kThreads) {
    sZ0[f] = p.chunk_z[(slot * p.H + h) * D + f];
    sDZ[f] = p.chunk_dz[(chunk * p.H + h) * D + f];
    sDgk2[f] = 0.f;
  }
  for (int r = tid; r < C; r += Tr::kThreads) {
    const bool ok = r < valid;
    const float den = ok ? p.den[(tok + r) * p.H + h] : 1.f;
    sDen[r] = den;
    sDdn[r] = (ok && p.normalize) ? -p.dd[(tok + r) * p.H + h] / den : 0.f;
  }
  __syncthreads();
  // ---- 2. G, tables, dN, sum_v S0 dS ----
  column_scan_local16<Tr>(sG, LdF);  // sG = L: cumsum inside each 16-row sub-chunk
  for (int f = tid; f < D; f += Tr::kThreads) decay_tables<Tr>(sG, LdF, f, sEC, sEkd, sEr, nullptr, sLogY);
  for (int i = tid; i < C * D; i += Tr::kThreads) {
    const int r = i / D, f = i - r * D;
    sDN[r * LdE + f] = from_float<T>(to_float(sDN[r * LdE + f]) / sDen[r]);
  }
  for (int f = warp; f < D; f += Tr::kWarps) {
    float s = 0.f;
    for (int v = tid % 32; v < D; v += 32) s = fmaf(S0[size_t(f) * D + v], dS[size_t(f) * D + v], s);
    s = warp_sum(s);
    if (tid % 32 == 0) sDgk[f] = s + sZ0[f] * sDZ[f];
  }
  __syncthreads();
  // ---- 3. dA = tril(dN v^T + dden) ----
  {
    const int m0 = warp / Tr::kSqWPM * 16, n0 = warp % Tr::kSqWPM * Tr::kSqNT * 8;
    float acc[Tr::kSqNT][4];
#pragma unroll
    for (int j = 0; j < Tr::kSqNT; ++j) acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = 0.f;
    tile_mma_smem<T, Tr::kSqNT, false, false>(acc, sDN, LdE, sV, LdE, m0, n0, 0, D);
#pragma unroll
    for (int j = 0; j < Tr::kSqNT; ++j)
      tile_for_each(acc[j], m0, n0 + 8 * j, [&](int t, int s, float& x) { sDA[t * LdCF + s] = s <= t ? x + sDdn[t] : 0.f; });
  }
  __syncthreads();

  const int m0 = warp / Tr::kRowWPM * 16, n0 = warp % Tr::kRowWPM * Tr::kRowNT * 8, blk = m0 / 16;
  const Lane l;
  float acc[Tr::kRowNT][4];
  auto zero_acc = [&] {
#pragma unroll
    for (int j = 0; j < Tr::kRowNT; ++j) acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = 0.f;
  };
  // ---- 4. dk ----
  diag_bwd<Tr, true>(sQ, sK, sG, sDA, sAcc2);
  __syncthreads();
  {
    zero_acc();
    auto la = [&](int m, int k) { return make_float2(to_float(sV[m * LdE + k]), to_float(sV[m * LdE + k + 1])); };
    auto lb = [&](int k, int nn) { return __ldg(reinterpret_cast<const float2*>(dS + size_t(nn) * D + k)); };
    tile_mma<T, Tr::kRowNT>(acc, m0, n0, 0, D, la, lb);
    // acc <- e^{G_C - e_j} (dS v_s + dz); collect sum_s k_s dk_inter_s per feature
#pragma unroll
    for (int j = 0; j < Tr::kRowNT; ++j) {
      float part[2] = {0.f, 0.f};
      tile_for_each(acc[j], m0, n0 + 8 * j, [&](int s, int f, float& x) {
        x = (x + sDZ[f]) * sEkd[blk * D + f];
        const float dki = x * __expf(sG[(16 * blk + 15) * LdF + f] - sG[s * LdF + f]);
        part[f & 1] = fmaf(to_float(sK[s * LdE + f]), dki, part[f & 1]);
      });
#pragma unroll
      for (int o = 4; o < 32; o <<= 1) {
        part[0] += __shfl_xor_sync(0xffffffffu, part[0], o);
        part[1] += __shfl_xor_sync(0xffffffffu, part[1], o);
      }
      if (l.gr == 0) {
        atomicAdd(&sDgk2[n0 + 8 * j + 2 * l.gc], part[0]);
        atomicAdd(&sDgk2[n0 + 8 * j + 2 * l.gc + 1], part[1]);
      }
    }
    if (blk + 1 < NS) {
      // B(t, f) = q_t e^{G_t - e_j} = q_t e^{L_t + sum_{j<i'<i} T}, i = t / 16
      auto la2 = [&](int m, int k) { return make_float2(sDA[k * LdCF + m], sDA[(k + 1) * LdCF + m]); };
      auto lb2 = [&](int k, int nn) {
        const float* ly = sLogY + ((k / 16) * NS + blk) * D;
        return make_float2(to_float(sQ[k * LdE + nn]) * __expf(sG[k * LdF + nn] + ly[nn]),
                           to_float(sQ[(k + 1) * LdE + nn]) * __expf(sG[(k + 1) * LdF + nn] + ly[nn]));
      };
      tile_mma<T, Tr::kRowNT>(acc, m0, n0, 16 * (blk + 1), C, la2, lb2);
    }
    T* dk = static_cast<T*>(p.dk) + (tok * p.H + h) * D;
#pragma unroll
    for (int j = 0; j < Tr::kRowNT; ++j)
      tile_for_each(acc[j], m0, n0 + 8 * j, [&](int s, int f, float& x) {
        const float d = x * __expf(sG[(16 * blk + 15) * LdF + f] - sG[s * LdF + f]) + sAcc2[s * LdF + f];
        if (s < valid) dk[size_t(s) * p.H * D + f] = from_float<T>(d);
        sAcc[s * LdF + f] = -to_float(sK[s * LdE + f]) * d;
      });
  }
  __syncthreads();
  // ---- 5. dv = A^T dN + Kd dS ----
  {
    zero_acc();
    tile_mma_smem<T, Tr::kRowNT, true, true>(acc, sAM, LdCE, sDN, LdE, m0, n0, 0, C);
    // A(s, f) = k_s e^{G_C - G_s} = k_s e^{L[16j+15] - L_s} Ekd_j, j = s / 16
    auto la2 = [&](int m, int k) {
      const float* e = sG + (16 * (m / 16) + 15) * LdF;
      const float* ekd = sEkd + (m / 16) * D;
      return make_float2(to_float(sK[m * LdE + k]) * __expf(e[k] - sG[m * LdF + k]) * ekd[k],
                         to_float(sK[m * LdE + k + 1]) * __expf(e[k + 1] - sG[m * LdF + k + 1]) * ekd[k + 1]);
    };
    auto lb2 = [&](int k, int nn) { return make_float2(__ldg(dS + size_t(k) * D + nn), __ldg(dS + size_t(k + 1) * D + nn)); };
    tile_mma<T, Tr::kRowNT>(acc, m0, n0, 0, D, la2, lb2);
    float* dv = p.dv + (tok * p.Hkv + hk) * D;
#pragma unroll
    for (int j = 0; j < Tr::kRowNT; ++j)
      tile_for_each(acc[j], m0, n0 + 8 * j, [&](int s, int v, float& x) {
        if (s < valid) atomicAdd(dv + size_t(s) * p.Hkv * D + v, x);
      });
  }
  // ---- 6. dq ----
  diag_bwd<Tr, false>(sQ, sK, sG, sDA, sAcc2);
  __syncthreads();
  {
    zero_acc();
    auto la = [&](int m, int k) { return make_float2(to_float(sDN[m * LdE + k]), to_float(sDN[m * LdE + k + 1])); };
    auto lb = [&](int k, int nn) { return __ldg(reinterpret_cast<const float2*>(S0 + size_t(nn) * D + k)); };
    tile_mma<T, Tr::kRowNT>(acc, m0, n0, 0, D, la, lb);
#pragma unroll
    for (int j = 0; j < Tr::kRowNT; ++j)
      tile_for_each(acc[j], m0, n0 + 8 * j, [&](int t, int f, float& x) {
        x = (x + sDdn[t] * sZ0[f]) * sEr[blk * D + f];
      });
    const float* ri = sG + (16 * blk) * LdF;
    if (blk > 0) {
      // B(s, f) = k_s e^{r_i - G_s} = k_s e^{L[16j+15] - L_s + L[16i] + sum_{j<i'<i} T}, j = s / 16
      auto la2 = [&](int m, int k) { return make_float2(sDA[m * LdCF + k], sDA[m * LdCF + k + 1]); };
      auto lb2 = [&](int k, int nn) {
        const int j = k / 16;
        const float off = ri[nn] + sLogY[(blk * NS + j) * D + nn];
        const float* e = sG + (16 * j + 15) * LdF;
        return make_float2(to_float(sK[k * LdE + nn]) * __expf(e[nn] - sG[k * LdF + nn] + off),
                           to_float(sK[(k + 1) * LdE + nn]) * __expf(e[nn] - sG[(k + 1) * LdF + nn] + off));
      };
      tile_mma<T, Tr::kRowNT>(acc, m0, n0, 0, 16 * blk, la2, lb2);
    }
    T* dq = static_cast<T*>(p.dq) + (tok * p.H + h) * D;
#pragma unroll
    for (int j = 0; j < Tr::kRowNT; ++j)
      tile_for_each(acc[j], m0, n0 + 8 * j, [&](int t, int f, float& x) {
        const float d = x * __expf(sG[t * LdF + f] - ri[f]) + sAcc2[t * LdF + f];
        if (t < valid) dq[size_t(t) * p.H * D + f] = from_float<T>(d);
        sAcc[t * LdF + f] += to_float(sQ[t * LdE + f]) * d;
      });
  }
  __syncthreads();
  // ---- 7. dg = suffix sums of (q dq - k dk) + the state terms ----
  column_scan<Tr, true>(sAcc, LdF, sScan);
  float* dg = p.dg + (tok * p.Hkv + hk) * D;
  for (int i = tid; i < valid * D; i += Tr::kThreads) {
    const int r = i / D, f = i - r * D;
    atomicAdd(dg + size_t(r) * p.Hkv * D + f, sAcc[r * LdF + f] + sEC[f] * sDgk[f] + sDgk2[f]);
  }
}

}  // namespace lawcat::kernels::gla
