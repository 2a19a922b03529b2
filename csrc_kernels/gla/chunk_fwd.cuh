// Forward "walker": one CTA per (segment of chunks, query head) walks its chunks in
// order with the fp32 state S [F x V] in registers (mma accumulator layout) and z [F]
// in shared memory. Two modes:
//   kOutput = false  segment-local pass: start from S = 0, write the segment's end state
//                    and its total decay (gamma) for the combine pass; skipped for the
//                    last segment of each sequence.
//   kOutput = true   start from the combined state of the segment, write y; the last
//                    segment writes the final state. kStore (backward recompute): also
//                    write the state at every chunk start (+ the final one), the
//                    intra-chunk scores A, den = q.z + eps and dd = dy . y per token.
//
// Per chunk (G = inclusive cumsum of log-gates inside the chunk, r_i / e_i = G at the
// first / last row of sub-chunk i, all exponents <= 0):
//   A[t][s] (t in sub-chunk i > j, s in j) = sum_f q_t e^{G_t - r_i} e^{r_i - e_j} * k_s e^{e_j - G_s}
//   A[t][s] (same sub-chunk, s <= t)      = sum_f q_t k_s prod_{u=s+1..t} alpha_u  (fp32)
//   den_t = sum_s A[t][s] + (q_t e^{G_t}) . z        N_t = (q_t e^{G_t}) S + sum_s A[t][s] v_s
//   S <- e^{G_C} S + sum_s (k_s e^{G_C - G_s}) v_s^T,  z likewise with k_s.
#pragma once
#include "gla/gla_common.cuh"

namespace lawcat::kernels::gla {

template <class Tr, bool kOutput>
struct FwdSmem {
  using T = typename Tr::T;
  static constexpr int C = Tr::kC, D = Tr::kD, NS = Tr::kNSub;
  static constexpr size_t kQ = 0;                                                     // T [C][LdE]
  static constexpr size_t kK = kQ + (kOutput ? smem_align(sizeof(T) * C * Tr::kLdE) : 0);
  static constexpr size_t kV = kK + smem_align(sizeof(T) * C * Tr::kLdE);            // T [C][LdE]
  static constexpr size_t kG = kV + smem_align(sizeof(T) * C * Tr::kLdE);            // f32 [C][LdF] local cumsum
  static constexpr size_t kAl = kG + smem_align(sizeof(float) * C * Tr::kLdF);       // f32 [C][LdF] alpha
  static constexpr size_t kSc = kAl + (kOutput ? smem_align(sizeof(float) * C * Tr::kLdF) : 0);  // T [V][LdE]
  static constexpr size_t kAm = kSc + (kOutput ? smem_align(sizeof(T) * D * Tr::kLdE) : 0);      // f32 [C][LdCF]
  static constexpr size_t kAb = kAm + (kOutput ? smem_align(sizeof(float) * C * Tr::kLdCF) : 0); // T [C][LdCE]
  static constexpr size_t kX = kAb + (kOutput ? smem_align(sizeof(T) * C * Tr::kLdCE) : 0);      // f32 [NS][NS][D]
  static constexpr size_t kEr = kX + (kOutput ? smem_align(sizeof(float) * NS * NS * D) : 0);    // f32 [NS][D]
  static constexpr size_t kEkd = kEr + (kOutput ? smem_align(sizeof(float) * NS * D) : 0);       // f32 [NS][D]
  static constexpr size_t kEC = kEkd + smem_align(sizeof(float) * NS * D);           // f32 [D] e^{G_C}
  static constexpr size_t kZ = kEC + smem_align(sizeof(float) * D);                  // f32 [D]
  static constexpr size_t kGam = kZ + smem_align(sizeof(float) * D);                 // f32 [D]
  static constexpr size_t kDen = kGam + smem_align(sizeof(float) * D);               // f32 [C]
  static constexpr size_t kDd = kDen + smem_align(sizeof(float) * C);                // f32 [C]
  static constexpr size_t kZp = kDd + smem_align(sizeof(float) * C);                 // f32 [parts][D]
  static constexpr size_t kBytes = kZp + smem_align(sizeof(float) * Scan<Tr>::kScratch);
};

// Loads kN consecutive elements of T (kN * sizeof(T) a multiple of 16 bytes) as floats.
template <typename T, int kN>
__device__ __forceinline__ void load_row(const T* src, float (&dst)[kN]) {
  constexpr int kVec = 16 / sizeof(T);
#pragma unroll
  for (int v = 0; v < kN / kVec; ++v) {
    const uint4 raw = *reinterpret_cast<const uint4*>(src + v * kVec);
    const T* e = reinterpret_cast<const T*>(&raw);
#pragma unroll
    for (int i = 0; i < kVec; ++i) dst[v * kVec + i] = to_float(e[i]);
  }
}

template <class Tr, bool kOutput, bool kStore>
__global__ void __launch_bounds__(Tr::kThreads, Tr::kMinBlocks) gla_fwd_walk_kernel(const GlaParams p) {
  using T = typename Tr::T;
  using L = FwdSmem<Tr, kOutput>;
  constexpr int C = Tr::kC, D = Tr::kD, NS = Tr::kNSub;
  constexpr int LdE = Tr::kLdE, LdF = Tr::kLdF, LdCF = Tr::kLdCF, LdCE = Tr::kLdCE;
  extern __shared__ __align__(16) unsigned char smem[];
  T* sQ = reinterpret_cast<T*>(smem + L::kQ);
  T* sK = reinterpret_cast<T*>(smem + L::kK);
  T* sV = reinterpret_cast<T*>(smem + L::kV);
  float* sG = reinterpret_cast<float*>(smem + L::kG);
  float* sAl = reinterpret_cast<float*>(smem + L::kAl);
  T* sSc = reinterpret_cast<T*>(smem + L::kSc);
  float* sAm = reinterpret_cast<float*>(smem + L::kAm);
  T* sAb = reinterpret_cast<T*>(smem + L::kAb);
  float* sX = reinterpret_cast<float*>(smem + L::kX);
  float* sEr = reinterpret_cast<float*>(smem + L::kEr);
  float* sEkd = reinterpret_cast<float*>(smem + L::kEkd);
  float* sEC = reinterpret_cast<float*>(smem + L::kEC);
  float* sZ = reinterpret_cast<float*>(smem + L::kZ);
  float* sGam = reinterpret_cast<float*>(smem + L::kGam);
  float* sDen = reinterpret_cast<float*>(smem + L::kDen);
  float* sDd = reinterpret_cast<float*>(smem + L::kDd);
  float* sZp = reinterpret_cast<float*>(smem + L::kZp);

  const int seg_id = blockIdx.x, h = blockIdx.y, tid = threadIdx.x;
  const SegInfo seg = get_seg(p, seg_id);
  const SeqInfo sq = get_seq<C>(p, seg.n);
  if (!kOutput && seg.c1 == sq.nc) return;  // last segment: its local state is never needed
  const int hk = h / (p.H / p.Hkv);
  const T* q_base = static_cast<const T*>(p.q) + sq.b * p.q_batch_stride + h * p.q_head_stride;
  const T* k_base = static_cast<const T*>(p.k) + sq.b * p.k_batch_stride + h * p.k_head_stride;
  const T* v_base = static_cast<const T*>(p.v) + sq.b * p.v_batch_stride + hk * p.v_head_stride;
  const float* g_base = p.g + sq.b * p.g_batch_stride + hk * p.g_head_stride;
  const size_t state_elems = size_t(D) * D;

  // ---- initial state ----
  StateTile<Tr> S;
  if (kOutput) {
    S.load(p.seg_S + (size_t(seg_id) * p.H + h) * state_elems);
    for (int f = tid; f < D; f += Tr::kThreads) sZ[f] = p.seg_z[(size_t(seg_id) * p.H + h) * D + f];
    S.for_each([&](int f, int v, float& x) { sSc[v * LdE + f] = from_float<T>(x); });
  } else {
    S.zero();
    for (int f = tid; f < D; f += Tr::kThreads) { sZ[f] = 0.f; sGam[f] = 1.f; }
  }
  __syncthreads();

  for (int c = seg.c0; c < seg.c1; ++c) {
    const int row0 = sq.row0 + c * C;
    const int valid = min(C, sq.len - c * C);
    // ---- 1. loads (zero rows past the end) ----
    if (kOutput) load_tile<Tr>(sQ, LdE, q_base + row0 * p.q_row_stride, p.q_row_stride, valid);
    load_tile<Tr>(sK, LdE, k_base + row0 * p.k_row_stride, p.k_row_stride, valid);
    load_tile<Tr>(sV, LdE, v_base + row0 * p.v_row_stride, p.v_row_stride, valid);
    load_tile<Tr>(sG, LdF, g_base + row0 * p.g_row_stride, p.g_row_stride, valid);
    if (kStore) {  // state at this chunk's start -> slot (sq.slot0 + c)
      S.store(p.chunk_S + (size_t(sq.slot0 + c) * p.H + h) * state_elems);
      for (int f = tid; f < D; f += Tr::kThreads) p.chunk_z[(size_t(sq.slot0 + c) * p.H + h) * D + f] = sZ[f];
    }
    __syncthreads();
    // ---- 2. alpha = e^g (diagonal blocks); L = cumsum of g inside each 16-row sub-chunk ----
    if (kOutput) {
      for (int i = tid; i < C * D; i += Tr::kThreads) {
        const int r = i / D, f = i - r * D;
        sAl[r * LdF + f] = __expf(sG[r * LdF + f]);
      }
      __syncthreads();  // alpha reads raw g before the scan overwrites it
    }
    column_scan_local16<Tr>(sG, LdF);
    // ---- 3. decay tables (X[i][j] = e^{r_i - e_j} = e^{L[16i] + sum_{j<i'<i} T}) ----
    for (int f = tid; f < D; f += Tr::kThreads)
      decay_tables<Tr>(sG, LdF, f, sEC, sEkd, kOutput ? sEr : nullptr, nullptr, nullptr);
    if (kOutput) {
      for (int f = tid; f < D; f += Tr::kThreads) {
#pragma unroll
        for (int i = 1; i < NS; ++i) {
          float mid = 0.f;
#pragma unroll
          for (int j = i - 1; j >= 0; --j) {
            sX[(i * NS + j) * D + f] = __expf(sG[(16 * i) * LdF + f] + mid);
            mid += sG[(16 * j + 15) * LdF + f];
          }
        }
      }
      // ---- 4. diagonal 16 x 16 blocks of A (raw q, k; products of alphas) ----
      {
        constexpr int kFG = Tr::kFG, kFP = Tr::kFPerG;
        const int s = tid / kFG, fg = tid % kFG, blk = s / 16, f0 = fg * kFP;
        float kr[kFP], w[kFP];
        load_row<T, kFP>(sK + s * LdE + f0, kr);
#pragma unroll
        for (int ff = 0; ff < kFP; ++ff) w[ff] = 1.f;
#pragma unroll 1
        for (int tt = 0; tt < 16; ++tt) {
          const int t = blk * 16 + tt;
          float part = 0.f;
          if (t >= s) {
            float qv[kFP];
            load_row<T, kFP>(sQ + t * LdE + f0, qv);
            if (t > s) {
              const float4* al = reinterpret_cast<const float4*>(sAl + t * LdF + f0);
#pragma unroll
              for (int v4 = 0; v4 < kFP / 4; ++v4) {
                const float4 a = al[v4];
                w[4 * v4] *= a.x; w[4 * v4 + 1] *= a.y; w[4 * v4 + 2] *= a.z; w[4 * v4 + 3] *= a.w;
              }
            }
#pragma unroll
            for (int ff = 0; ff < kFP; ++ff) part = fmaf(qv[ff] * kr[ff], w[ff], part);
          }
#pragma unroll
          for (int o = 1; o < kFG; o <<= 1) part += __shfl_xor_sync(0xffffffffu, part, o);
          if (fg == 0) sAm[t * LdCF + s] = t >= s ? part : 0.f;
        }
        // blocks above the diagonal are zero
        for (int i = tid; i < C * C; i += Tr::kThreads) {
          const int t = i / C, s2 = i - t * C;
          if (s2 / 16 > t / 16) sAm[t * LdCF + s2] = 0.f;
        }
      }
      __syncthreads();
      // ---- 5. scale in place: Q <- q e^{L - L[16i]}, K <- k e^{L[16j+15] - L} ----
      for (int i = tid; i < C * D; i += Tr::kThreads) {
        const int r = i / D, f = i - r * D, b16 = r / 16;
        const float gr = sG[r * LdF + f];
        sQ[r * LdE + f] = from_float<T>(to_float(sQ[r * LdE + f]) * __expf(gr - sG[(16 * b16) * LdF + f]));
        sK[r * LdE + f] = from_float<T>(to_float(sK[r * LdE + f]) * __expf(sG[(16 * b16 + 15) * LdF + f] - gr));
      }
      __syncthreads();
      // ---- 6. off-diagonal sub-chunk blocks of A on the matrix units ----
      for (int tile = tid / 32; tile < NS * (NS - 1); tile += Tr::kWarps) {
        int i = 1, rem = tile;  // enumerate (i, nt) with nt < 2i
        while (rem >= 2 * i) { rem -= 2 * i; ++i; }
        const int nt = rem, j = nt / 2;
        float acc[1][4] = {{0.f, 0.f, 0.f, 0.f}};
        const float* X = sX + (i * NS + j) * D;
        auto la = [&](int m, int k) {
          return make_float2(to_float(sQ[m * LdE + k]) * X[k], to_float(sQ[m * LdE + k + 1]) * X[k + 1]);
        };
        auto lb = [&](int k, int n) { return make_float2(to_float(sK[n * LdE + k]), to_float(sK[n * LdE + k + 1])); };
        tile_mma<T, 1>(acc, 16 * i, 8 * nt, 0, D, la, lb);
        tile_for_each(acc[0], 16 * i, 8 * nt, [&](int r, int cc, float& x) { sAm[r * LdCF + cc] = x; });
      }
      __syncthreads();
      // ---- 7. Q <- q e^{G} (= Q Er_i), K <- k e^{G_C - G} (= K Ekd_j); A as T; den ----
      {
        constexpr int kTPR = Tr::kThreads / C;  // threads per row
        const int r = tid / kTPR, part = tid % kTPR, b16 = r / 16;
        float sum = 0.f;
        for (int f = part; f < D; f += kTPR) {
          const float qe = to_float(sQ[r * LdE + f]) * sEr[b16 * D + f];
          sQ[r * LdE + f] = from_float<T>(qe);
          sK[r * LdE + f] = from_float<T>(to_float(sK[r * LdE + f]) * sEkd[b16 * D + f]);
          sum = fmaf(qe, sZ[f], sum);
        }
        for (int s2 = part; s2 < C; s2 += kTPR) {
          const float a = sAm[r * LdCF + s2];
          sAb[r * LdCE + s2] = from_float<T>(a);
          sum += a;
        }
#pragma unroll
        for (int o = 1; o < kTPR; o <<= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
        if (part == 0) {
          sDen[r] = p.normalize ? sum + p.eps : 1.f;
          sDd[r] = 0.f;
        }
      }
      __syncthreads();
      // ---- 8. outputs N = Qe S + A v, y = N / den ----
      {
        const int warp = tid / 32, m0 = warp / Tr::kRowWPM * 16, n0 = warp % Tr::kRowWPM * Tr::kRowNT * 8;
        float acc[Tr::kRowNT][4];
#pragma unroll
        for (int j = 0; j < Tr::kRowNT; ++j) acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = 0.f;
        tile_mma_smem<T, Tr::kRowNT, false, false>(acc, sQ, LdE, sSc, LdE, m0, n0, 0, D);
        tile_mma_smem<T, Tr::kRowNT, false, true>(acc, sAb, LdCE, sV, LdE, m0, n0, 0, C);
        T* y = p.y == nullptr ? nullptr : static_cast<T*>(p.y) + (size_t(sq.tok0 + c * C) * p.H + h) * D;
        const T* dy = kStore ? static_cast<const T*>(p.dy) + (size_t(sq.tok0 + c * C) * p.H + h) * D : nullptr;
        float dd_lo = 0.f, dd_hi = 0.f;
        const Lane l;
#pragma unroll
        for (int j = 0; j < Tr::kRowNT; ++j) {
          tile_for_each(acc[j], m0, n0 + 8 * j, [&](int r, int cc, float& x) {
            const float yv = x / sDen[r];
            if (r < valid) {
              if (y != nullptr) y[size_t(r) * p.H * D + cc] = from_float<T>(yv);
              if (kStore) {
                const float d = to_float(dy[size_t(r) * p.H * D + cc]) * yv;
                if (r == m0 + l.gr) dd_lo += d; else dd_hi += d;
              }
            }
          });
        }
        if (kStore) {
          dd_lo += __shfl_xor_sync(0xffffffffu, dd_lo, 1);
          dd_lo += __shfl_xor_sync(0xffffffffu, dd_lo, 2);
          dd_hi += __shfl_xor_sync(0xffffffffu, dd_hi, 1);
          dd_hi += __shfl_xor_sync(0xffffffffu, dd_hi, 2);
          if (l.gc == 0) {
            atomicAdd(&sDd[m0 + l.gr], dd_lo);
            atomicAdd(&sDd[m0 + l.gr + 8], dd_hi);
          }
        }
      }
    } else {
      __syncthreads();
      // segment-local pass: K <- k e^{G_C - G} = k e^{L[16j+15] - L} Ekd_j
      for (int i = tid; i < C * D; i += Tr::kThreads) {
        const int r = i / D, f = i - r * D, b16 = r / 16;
        sK[r * LdE + f] = from_float<T>(to_float(sK[r * LdE + f]) *
                                        __expf(sG[(16 * b16 + 15) * LdF + f] - sG[r * LdF + f]) * sEkd[b16 * D + f]);
      }
    }
    __syncthreads();
    if (kStore) {
      const size_t chunk = size_t(sq.chunk0 + c);
      T* A = static_cast<T*>(p.chunk_A) + (chunk * p.H + h) * C * C;
      for (int i = tid; i < C * C; i += Tr::kThreads) A[i] = sAb[(i / C) * LdCE + (i % C)];
      for (int r = tid; r < valid; r += Tr::kThreads) {
        p.den[size_t(sq.tok0 + c * C + r) * p.H + h] = sDen[r];
        p.dd[size_t(sq.tok0 + c * C + r) * p.H + h] = sDd[r];
      }
    }
    // ---- 9. state update: S <- e^{G_C} S + Kd^T v, z <- e^{G_C} z + sum_s Kd ----
    {
      column_sum_parts<Tr>(sK, LdE, sZp, [&](int, int) { return 1.f; });
      if (!kOutput)
        for (int f = tid; f < D; f += Tr::kThreads) sGam[f] *= sEC[f];
      S.for_each([&](int f, int v, float& x) { x *= sEC[f]; });
      tile_mma_smem<T, Tr::kStateNT, true, true>(S.acc, sK, LdE, sV, LdE, S.m0(), S.n0(), 0, C);
    }
    __syncthreads();
    for (int f = tid; f < D; f += Tr::kThreads) sZ[f] = sEC[f] * sZ[f] + z_sum_parts<Tr>(sZp, f);
    if (kOutput) S.for_each([&](int f, int v, float& x) { sSc[v * LdE + f] = from_float<T>(x); });
    // (the next chunk's first __syncthreads orders these writes before their reads)
  }

  // ---- end of segment ----
  if (kOutput) {
    if (seg.c1 == sq.nc) {
      if (p.sT != nullptr) {
        S.store(p.sT + (size_t(seg.n) * p.H + h) * state_elems);
        for (int f = tid; f < D; f += Tr::kThreads) p.zT[(size_t(seg.n) * p.H + h) * D + f] = sZ[f];
      }
      if (kStore) {
        S.store(p.chunk_S + (size_t(sq.slot0 + sq.nc) * p.H + h) * state_elems);
        for (int f = tid; f < D; f += Tr::kThreads) p.chunk_z[(size_t(sq.slot0 + sq.nc) * p.H + h) * D + f] = sZ[f];
      }
    }
  } else {
    S.store(p.seg_S + (size_t(seg_id) * p.H + h) * state_elems);
    for (int f = tid; f < D; f += Tr::kThreads) {
      p.seg_z[(size_t(seg_id) * p.H + h) * D + f] = sZ[f];
      p.seg_gamma[(size_t(seg_id) * p.H + h) * D + f] = sGam[f];
    }
  }
}

}  // namespace lawcat::kernels::gla
