// The LAWCAT attention core forward, fused (see api.h, LawcatFwdParams). Four launches:
//   gate   : per (chunk, kv head): G = chunk-local cumsum of logsigmoid(a W2^T + b) / tau,
//            in log2 units, to a small fp32 workspace (shared by the g query heads)
//   state  : per (segment, query head): the segment's local end state (segments give the
//            GPU enough CTAs; the last segment of each sequence skips it)
//   combine: gla_combine_kernel turns local states into each segment's start state
//   output : per (segment, query head): y
// Every chunk is computed from the raw projections: causal conv, Hedgehog feature map and
// the products all run on chip, on the matrix units, with ONE reference point per chunk:
//
//   r = (G_0 + G_{C-1}) / 2,  Q'_t = φ(q_t) e^{G_t - r},  K'_s = φ(k_s) e^{r - G_s}
//   A = mask(Q' K'^T)             (= φq_t . φk_s e^{G_t - G_s} for s <= t)
//   N = Q' (e^r S) + A v,  den = Q' . (e^r z) + rowsum(A) + eps,  y = N / den
//   S <- e^{G_C - r} (e^r S + K'^T v),  z likewise with the column sums of K'
//
// drop = max_f (G_0 - G_{C-1}) bounds every scale by e^{drop/2}. A chunk whose gates decay
// more than kMaxDrop (extreme gates: a trained gate essentially never does this) takes an
// exact element-wise path instead (exponents e^{G_t - G_s} <= 1 per pair), so the kernel is
// correct for any input. The state pass uses K' = φ(k) e^{G_C - G} (<= φ k): no guard.
//
// Warps (8, 256 threads): outputs = (16-row band, column half) per warp; feature maps =
// warps 0-3 q bands, 4-7 k bands (state pass: 0-3 and 4-7 take one chunk each); a warp
// owns whole rows, so the row softmax is a quad shuffle; the conv is evaluated straight
// into the mma A fragments.
#pragma once
#include <type_traits>

#include "api.h"
#include "gla/gla_common.cuh"

namespace lawcat::kernels::fused {

constexpr float kLog2e = 1.4426950408889634f;

// Per-feature vectors of the output pass, [kNumVec][D] floats of shared memory.
enum Vec { kRef = 0, kEq, kPre, kPost, kZ, kZq, kZk, kNumVec };

// 8 warps (256 threads); D = 64 fits 2 CTAs per SM (101 KB of shared memory), D = 128 one.
// (16 warps at D = 128 measured no faster: 1.48 vs 1.43 ms at 16K, with register spills.)
template <typename T_, int kD_, int kWarps_ = 8>
struct FTraits {
  using T = T_;
  static constexpr int kD = kD_, kC = 64, kHalf = kD_ / 2;
  static constexpr int kWarps = kWarps_, kThreads = 32 * kWarps_;
  static constexpr int kMinBlocks = kD_ == 64 ? 2 : 1;
  static constexpr int kAW = kWarps / 4;  // warps per 16-row band in A and the outputs
  static constexpr int kLdX = kD + 8;      // T rows of D (raw inputs, Q', K', v, e^r S)
  static constexpr int kLdA = kC + 8;      // T rows of C (A)
  static constexpr int kLdG = kD + 8;      // fp32 rows of D (G); 8 words of padding: float2 pairs of 16 lanes hit distinct banks
  static constexpr int kLdW = kHalf + 8;   // T rows of D/2 (W_phi)
  // gla_common's StateTile / Scan use these names.
  static constexpr int kStateWPM = kWarps / (kD / 16);
  static constexpr int kStateNT = (kD / 8) / kStateWPM;
  // bf16 keeps fp32's exponent range; fp16 operands overflow past ~e^11.
  // (in log2 units: the gates are kept as log2 of the decay)
  static constexpr float kMaxDrop = (std::is_same<T, __half>::value ? 16.f : 80.f) * kLog2e;
};

// Shared-memory layout of the output pass (bytes).
template <class Tr, int kWp>
struct Layout {
  static constexpr int C = Tr::kC, D = Tr::kD;
  using T = typename Tr::T;
  size_t xq, xk, v, wphi, fq, fk, g, q, k, A, S, vec, den, total;
  __host__ __device__ Layout() {
    size_t o = 0;
    auto take = [&](size_t bytes) { const size_t at = o; o += (bytes + 15) / 16 * 16; return at; };
    xq = take(sizeof(T) * (C + 8) * Tr::kLdX);
    xk = take(sizeof(T) * (C + 8) * Tr::kLdX);
    v = take(sizeof(T) * 2 * C * Tr::kLdX);  // double-buffered: chunk c + 1 loads during chunk c
    wphi = take(sizeof(T) * D * Tr::kLdW);
    fq = take(sizeof(float) * D * kWp);
    fk = take(sizeof(float) * D * kWp);
    g = take(sizeof(float) * C * Tr::kLdG);
    q = take(sizeof(T) * C * Tr::kLdX);
    k = take(sizeof(T) * C * Tr::kLdX);
    A = take(sizeof(T) * C * Tr::kLdA);
    S = take(sizeof(T) * D * Tr::kLdX);
    vec = take(sizeof(float) * kNumVec * D);
    den = take(sizeof(float) * C);
    total = o;
  }
};

// Shared memory of the gate kernel: a [C][R + 8], W2 slice [D][R + 8] (T), bias [D], G [C][LdG].
template <class Tr>
struct GateLayout {
  size_t act, w2, b2, g, scratch, total;
  __host__ __device__ GateLayout(int R) {
    using T = typename Tr::T;
    const int ldr = R + 8;
    size_t o = 0;
    auto take = [&](size_t bytes) { const size_t at = o; o += (bytes + 15) / 16 * 16; return at; };
    act = take(sizeof(T) * Tr::kC * ldr);
    w2 = take(sizeof(T) * Tr::kD * ldr);
    b2 = take(sizeof(float) * Tr::kD);
    g = take(sizeof(float) * Tr::kC * Tr::kLdG);
    scratch = take(sizeof(float) * gla::Scan<Tr>::kScratch);
    total = o;
  }
};


__device__ __forceinline__ void cp_async16(void* dst, const void* src, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_u32(dst)), "l"(src), "r"(valid ? 16 : 0));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
// Commits what is pending, then waits for every group of this thread.
__device__ __forceinline__ void cp_async_wait_all() {
  asm volatile("cp.async.commit_group;\ncp.async.wait_group 0;\n" ::: "memory");
}

// 2^x on the special-function unit (gates and φ logits are kept in log2 units, so every
// exponential is one MUFU op without the multiply by log2(e) that __expf adds).
__device__ __forceinline__ float ex2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}
template <typename T>
__device__ __forceinline__ float2 ld2(const T* p) {
  if constexpr (std::is_same<T, __nv_bfloat16>::value) return __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(p));
  else return __half22float2(*reinterpret_cast<const __half2*>(p));
}
template <typename T>
__device__ __forceinline__ void st2(T* p, float x, float y) {
  *reinterpret_cast<uint32_t*>(p) = pack2(make_float2(x, y), (T*)nullptr);
}

// cp.async of raw rows t0 - kHalo .. t0 + rows - 1 of one head of q or k (row stride ld) into
// dst [rows + kHalo][LdX]: the conv's input with its halo, zero outside the sequence.
template <class Tr, int kWp>
__device__ __forceinline__ void load_raw_rows(typename Tr::T* dst, const typename Tr::T* base, int64_t ld,
                                              const gla::SeqInfo& sq, int t0, int rows) {
  constexpr int kHalo = kWp - 1, kPerRow = Tr::kD / 8;
  for (int i = threadIdx.x; i < (rows + kHalo) * kPerRow; i += Tr::kThreads) {
    const int r = i / kPerRow, cv = (i - r * kPerRow) * 8, tau = t0 + r - kHalo;
    const bool ok = tau >= 0 && tau < sq.len;
    cp_async16(dst + r * Tr::kLdX + cv, base + (int64_t(sq.row0) + (ok ? tau : 0)) * ld + cv, ok);
  }
}

// cp.async of the cumulative gates of rows t0 .. t0 + rows - 1 of one kv head into dst
// [rows][LdG] (zero from row `valid` on).
template <class Tr>
__device__ __forceinline__ void load_gate_rows(float* dst, const float* g_base, const GlaParams& p,
                                               const gla::SeqInfo& sq, int t0, int rows, int valid) {
  constexpr int kPerRow = Tr::kD / 4;
  for (int i = threadIdx.x; i < rows * kPerRow; i += Tr::kThreads) {
    const int r = i / kPerRow, cv = (i - r * kPerRow) * 4;
    const bool ok = r < valid;
    cp_async16(dst + r * Tr::kLdG + cv, g_base + size_t(sq.tok0 + (ok ? t0 + r : 0)) * p.Hkv * Tr::kD + cv, ok);
  }
}

// Gate, once per (chunk, kv head): G = chunk-local inclusive cumsum of
// logsigmoid(a W2^T + b) / tau, written for the valid rows of the chunk.
template <class Tr>
__global__ void __launch_bounds__(Tr::kThreads) lawcat_gate_kernel(const LawcatFwdParams P) {
  using T = typename Tr::T;
  constexpr int C = Tr::kC, D = Tr::kD, Dh = Tr::kHalf, LdG = Tr::kLdG, kVec = 8;
  const GlaParams& p = P.gla;
  const int R = P.rank, LdR = R + 8, hk = blockIdx.y, tid = threadIdx.x, warp = tid / 32;
  const GateLayout<Tr> L(R);
  extern __shared__ __align__(16) unsigned char smem[];
  T* sAct = reinterpret_cast<T*>(smem + L.act);
  T* sW2 = reinterpret_cast<T*>(smem + L.w2);
  float* sB2 = reinterpret_cast<float*>(smem + L.b2);
  float* sG = reinterpret_cast<float*>(smem + L.g);
  float* sScr = reinterpret_cast<float*>(smem + L.scratch);
  int n, c;
  gla::chunk_of(p, blockIdx.x, n, c);
  const gla::SeqInfo sq = gla::get_seq<C>(p, n);
  const int t0 = c * C, valid = min(C, sq.len - t0);
  const T* a_base = static_cast<const T*>(P.a) + sq.b * P.a_batch_stride;
  const int aper = R / kVec;
  for (int i = tid; i < C * aper; i += Tr::kThreads) {
    const int r = i / aper, cv = (i - r * aper) * kVec;
    const bool ok = r < valid;
    cp_async16(sAct + r * LdR + cv, a_base + (sq.row0 + (ok ? t0 + r : 0)) * P.a_row_stride + cv, ok);
  }
  for (int i = tid; i < D * R; i += Tr::kThreads) {
    const int nn = i / R, cc = i - nn * R;
    sW2[nn * LdR + cc] = from_float<T>(P.w2[(size_t(hk) * D + nn) * R + cc]);
  }
  for (int f = tid; f < D; f += Tr::kThreads) sB2[f] = P.b2 != nullptr ? P.b2[size_t(hk) * D + f] : 0.f;
  cp_async_wait_all();
  __syncthreads();
  {
    constexpr int kNT = D / 16;
    const int m0 = (warp >> 1) * 16, n0 = (warp & 1) * Dh;
    float acc[kNT][4] = {};
    tile_mma_smem<T, kNT, false, false>(acc, sAct, LdR, sW2, LdR, m0, n0, 0, R);
#pragma unroll
    for (int j = 0; j < kNT; ++j)
      tile_for_each(acc[j], m0, n0 + 8 * j, [&](int r, int cc, float& x0) {
        const float x = x0 + sB2[cc];
        // logsigmoid(x) = min(x, 0) - log(1 + e^{-|x|}); the fast log loses only terms
        // below e^{-17}, far under the bf16 resolution of the gate.
        const float ls = fminf(x, 0.f) - __logf(1.f + __expf(-fabsf(x)));
        sG[r * LdG + cc] = r < valid ? ls * (kLog2e / P.tau) : 0.f;  // log2 units
        if (P.gate_dlogit != nullptr && r < valid)  // backward: d logsigmoid(x) / dx / tau
          P.gate_dlogit[size_t(sq.tok0 + t0 + r) * p.Hkv * D + hk * D + cc] = 1.f / ((1.f + __expf(x)) * P.tau);
      });
  }
  __syncthreads();
  gla::column_scan<Tr, false>(sG, LdG, sScr);
  float* out = P.gate_cumsum + size_t(sq.tok0 + t0) * p.Hkv * D + hk * D;
  for (int i = tid; i < valid * (D / 4); i += Tr::kThreads) {
    const int r = i / (D / 4), cv = (i - r * (D / 4)) * 4;
    *reinterpret_cast<float4*>(out + size_t(r) * p.Hkv * D + cv) = *reinterpret_cast<const float4*>(sG + r * LdG + cv);
  }
}

// One warp: feature maps of the 16 rows m0 .. m0 + 15 of a chunk, written as T rows of D.
//   X: raw inputs, chunk row r's conv tap j at X + (r + j) * LdX; F: filters [kWp][D];
//   G: chunk-local cumsums (row r at G + r * LdG); ref: reference per feature;
//   q (is_k false): Q' = φ e^{G - ref}, den[r] = Q' . zq;  k: K' = φ e^{ref - G}, zero rows
//   >= valid, column sums atomically added to colsum. scale = false writes the raw φ.
//   kBwd (the backward's recompute): Q' / K' only, no den / colsum.
template <class Tr, int kWp, bool kBwd = false>
__device__ __forceinline__ void feature_map_band(const typename Tr::T* X, const float* F, const typename Tr::T* sWphi,
                                                 const float* G, const float* ref, const float* zq,
                                                 typename Tr::T* dst, int m0, int valid, bool is_k, bool scale,
                                                 float* colsum, float* den) {
  using T = typename Tr::T;
  constexpr int D = Tr::kD, Dh = Tr::kHalf, LdX = Tr::kLdX, LdG = Tr::kLdG, LdW = Tr::kLdW;
  const Lane ln;
  constexpr int kNT = Dh / 8;
  float acc[kNT][4] = {};
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk) {
    uint32_t af[4];
#pragma unroll
    for (int s = 0; s < 4; ++s) {
      const int row = m0 + ln.gr + (s & 1) * 8, col = kk * 16 + 2 * ln.gc + (s >> 1) * 8;
      float2 u = make_float2(0.f, 0.f);
#pragma unroll
      for (int j = 0; j < kWp; ++j) {
        const float2 x = ld2(X + (row + j) * LdX + col);
        const float2 w = *reinterpret_cast<const float2*>(F + j * D + col);
        u.x = fmaf(w.x, x.x, u.x);
        u.y = fmaf(w.y, x.y, u.y);
      }
      af[s] = pack2(u, (T*)nullptr);
    }
    const int lane = threadIdx.x & 31, i8 = lane >> 3, r8 = lane & 7;
#pragma unroll
    for (int j = 0; j < kNT; j += 2) {
      uint32_t bf[4];
      ldsm_x4_t(bf, sWphi + (kk * 16 + r8 + 8 * (i8 & 1)) * LdW + 8 * j + 8 * (i8 >> 1));
      const uint32_t b0[2] = {bf[0], bf[1]}, b1[2] = {bf[2], bf[3]};
      mma_16816(acc[j], af, b0, (T*)nullptr);
      mma_16816(acc[j + 1], af, b1, (T*)nullptr);
    }
  }
  // row softmax of s and -s (rows gr: acc[.][0..1], gr + 8: acc[.][2..3]); a quad holds a row
  float mx[2] = {-INFINITY, -INFINITY}, mn[2] = {INFINITY, INFINITY};
#pragma unroll
  for (int j = 0; j < kNT; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e) { mx[e >> 1] = fmaxf(mx[e >> 1], acc[j][e]); mn[e >> 1] = fminf(mn[e >> 1], acc[j][e]); }
#pragma unroll
  for (int hr = 0; hr < 2; ++hr)
#pragma unroll
    for (int o = 1; o < 4; o <<= 1) {
      mx[hr] = fmaxf(mx[hr], __shfl_xor_sync(0xffffffffu, mx[hr], o));
      mn[hr] = fminf(mn[hr], __shfl_xor_sync(0xffffffffu, mn[hr], o));
    }
  float ep[kNT][4], em[kNT][4], sp[2] = {0.f, 0.f}, sm[2] = {0.f, 0.f};
#pragma unroll
  for (int j = 0; j < kNT; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      ep[j][e] = ex2(acc[j][e] - mx[e >> 1]);
      em[j][e] = ex2(mn[e >> 1] - acc[j][e]);
      sp[e >> 1] += ep[j][e];
      sm[e >> 1] += em[j][e];
    }
#pragma unroll
  for (int hr = 0; hr < 2; ++hr) {
#pragma unroll
    for (int o = 1; o < 4; o <<= 1) {
      sp[hr] += __shfl_xor_sync(0xffffffffu, sp[hr], o);
      sm[hr] += __shfl_xor_sync(0xffffffffu, sm[hr], o);
    }
    sp[hr] = 1.f / sp[hr];
    sm[hr] = 1.f / sm[hr];
  }
  float dpart[2] = {0.f, 0.f};
#pragma unroll
  for (int j = 0; j < kNT; ++j) {
    float colp[4] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll
    for (int hr = 0; hr < 2; ++hr) {
      const int t = m0 + ln.gr + 8 * hr, f = 8 * j + 2 * ln.gc;
      const bool zero_row = is_k && t >= valid;
      float v[4];  // (f, f+1) of softmax(s), then of softmax(-s) -> features f, f+1, Dh+f, Dh+f+1
      v[0] = ep[j][2 * hr]; v[1] = ep[j][2 * hr + 1]; v[2] = em[j][2 * hr]; v[3] = em[j][2 * hr + 1];
      v[0] = fmaxf(v[0] * sp[hr], 1e-12f);
      v[1] = fmaxf(v[1] * sp[hr], 1e-12f);
      v[2] = fmaxf(v[2] * sm[hr], 1e-12f);
      v[3] = fmaxf(v[3] * sm[hr], 1e-12f);
      float2 gp[2] = {make_float2(0.f, 0.f), make_float2(0.f, 0.f)};
      if (scale) {
        gp[0] = *reinterpret_cast<const float2*>(G + t * LdG + f);
        gp[1] = *reinterpret_cast<const float2*>(G + t * LdG + Dh + f);
      }
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int fe = (e < 2 ? f : Dh + f) + (e & 1);
        if (scale) {
          const float gx = ((e & 1) ? gp[e >> 1].y : gp[e >> 1].x) - ref[fe];
          v[e] *= ex2(is_k ? -gx : gx);
        }
        if (zero_row) v[e] = 0.f;
        if constexpr (!kBwd)
          if (!is_k) dpart[hr] = fmaf(v[e], zq[fe], dpart[hr]);
      }
      st2(dst + t * LdX + f, v[0], v[1]);
      st2(dst + t * LdX + Dh + f, v[2], v[3]);
#pragma unroll
      for (int e = 0; e < 4; ++e) colp[e] += v[e];
    }
    if (!kBwd && is_k && scale) {  // column sums of K' for z: reduce over the 8 row groups of the warp
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        float x = colp[e];
        x += __shfl_xor_sync(0xffffffffu, x, 4);
        x += __shfl_xor_sync(0xffffffffu, x, 8);
        x += __shfl_xor_sync(0xffffffffu, x, 16);
        if (ln.gr == 0) atomicAdd(&colsum[(e < 2 ? 8 * j : Dh + 8 * j) + 2 * ln.gc + (e & 1)], x);
      }
    }
  }
  if (!kBwd && !is_k && scale) {
#pragma unroll
    for (int hr = 0; hr < 2; ++hr) {
      dpart[hr] += __shfl_xor_sync(0xffffffffu, dpart[hr], 1);
      dpart[hr] += __shfl_xor_sync(0xffffffffu, dpart[hr], 2);
    }
    if (ln.gc == 0) { den[m0 + ln.gr] = dpart[0]; den[m0 + ln.gr + 8] = dpart[1]; }
  }
}

// Per-CTA constants of query head h: its conv filters, right-aligned to kWp taps (sFq may be
// null: the state pass needs k's only), and W_φ scaled by log2(e) (logits in log2 units).
template <class Tr, int kWp>
__device__ __forceinline__ void stage_head_constants(const LawcatFwdParams& P, int h, float* sFq, float* sFk,
                                                     typename Tr::T* sWphi) {
  constexpr int D = Tr::kD, Dh = Tr::kHalf;
  const int W = P.width;
  for (int i = threadIdx.x; i < D * kWp; i += Tr::kThreads) {  // tap-major [kWp][D]: lanes read consecutive channels
    const int tap = i / D, c = i - tap * D, j = tap - (kWp - W);
    if (sFq != nullptr) sFq[i] = j >= 0 ? P.conv_q[(size_t(h) * D + c) * W + j] : 0.f;
    sFk[i] = j >= 0 ? P.conv_k[(size_t(h) * D + c) * W + j] : 0.f;
  }
  for (int i = threadIdx.x; i < D * Dh; i += Tr::kThreads) {
    const int r = i / Dh, c = i - r * Dh;
    sWphi[r * Tr::kLdW + c] = from_float<typename Tr::T>(P.wphi[(size_t(h) * D + r) * Dh + c] * kLog2e);
  }
}

// ---- output pass ---------------------------------------------------------------------
template <class Tr, int kWp>
__global__ void __launch_bounds__(Tr::kThreads, Tr::kMinBlocks) lawcat_fwd_kernel(const LawcatFwdParams P) {
  using T = typename Tr::T;
  constexpr int C = Tr::kC, D = Tr::kD, LdX = Tr::kLdX, LdA = Tr::kLdA, LdG = Tr::kLdG, kVec = 8;
  const GlaParams& p = P.gla;
  const Layout<Tr, kWp> L;
  extern __shared__ __align__(16) unsigned char smem[];
  T* sXq = reinterpret_cast<T*>(smem + L.xq);
  T* sXk = reinterpret_cast<T*>(smem + L.xk);
  T* sV = reinterpret_cast<T*>(smem + L.v);
  T* sWphi = reinterpret_cast<T*>(smem + L.wphi);
  float* sFq = reinterpret_cast<float*>(smem + L.fq);
  float* sFk = reinterpret_cast<float*>(smem + L.fk);
  float* sG = reinterpret_cast<float*>(smem + L.g);
  T* sQ = reinterpret_cast<T*>(smem + L.q);
  T* sK = reinterpret_cast<T*>(smem + L.k);
  T* sA = reinterpret_cast<T*>(smem + L.A);
  T* sS = reinterpret_cast<T*>(smem + L.S);
  float* sVec = reinterpret_cast<float*>(smem + L.vec);
  float* sDen = reinterpret_cast<float*>(smem + L.den);
  auto vec = [&](Vec which) { return sVec + int(which) * D; };

  const int seg_id = blockIdx.x, h = blockIdx.y, tid = threadIdx.x, warp = tid / 32;
  const gla::SegInfo seg = gla::get_seg(p, seg_id);
  const gla::SeqInfo sq = gla::get_seq<C>(p, seg.n);
  const int hk = h / (p.H / p.Hkv);
  const T* q_base = static_cast<const T*>(p.q) + sq.b * p.q_batch_stride + h * p.q_head_stride;
  const T* k_base = static_cast<const T*>(p.k) + sq.b * p.k_batch_stride + hk * p.k_head_stride;
  const T* v_base = static_cast<const T*>(p.v) + sq.b * p.v_batch_stride + hk * p.v_head_stride;
  const float* g_base = P.gate_cumsum + hk * D;  // row r at g_base + r * Hkv * D
  const Lane ln;

  stage_head_constants<Tr, kWp>(P, h, sFq, sFk, sWphi);

  // ---- initial state ----
  gla::StateTile<Tr> S;
  S.load(p.seg_S + (size_t(seg_id) * p.H + h) * D * D);
  for (int f = tid; f < D; f += Tr::kThreads) vec(kZ)[f] = p.seg_z[(size_t(seg_id) * p.H + h) * D + f];

  // Loads of chunk c: raw q, k with kHalo rows before the chunk (zero outside the sequence),
  // G (rows past the end read as 0; see step 3), v into buffer c & 1. Issued one chunk ahead,
  // into buffers the current chunk no longer reads once its feature maps are built.
  auto issue_loads = [&](int c) {
    constexpr int kPerRow = D / kVec;
    const int t0 = c * C, valid = min(C, sq.len - t0);
    T* vbuf = sV + (c & 1) * C * LdX;
    load_raw_rows<Tr, kWp>(sXk, k_base, p.k_row_stride, sq, t0, C);
    load_raw_rows<Tr, kWp>(sXq, q_base, p.q_row_stride, sq, t0, C);
    for (int i = tid; i < C * kPerRow; i += Tr::kThreads) {
      const int r = i / kPerRow, cv = (i - r * kPerRow) * kVec;
      const bool ok = r < valid;
      cp_async16(vbuf + r * LdX + cv, v_base + (sq.row0 + (ok ? t0 + r : 0)) * p.v_row_stride + cv, ok);
    }
    load_gate_rows<Tr>(sG, g_base, p, sq, t0, C, valid);
    cp_async_commit();
  };
  if (seg.c0 < seg.c1) issue_loads(seg.c0);

  for (int c = seg.c0; c < seg.c1; ++c) {
    const int t0 = c * C, valid = min(C, sq.len - t0);
    T* const sVc = sV + (c & 1) * C * LdX;
    cp_async_wait_all();
    __syncthreads();  // this chunk's loads landed; the previous chunk's readers are done
    if (P.state_chunks != nullptr) {  // training: the state before this chunk, for the backward
      const size_t at = size_t(sq.chunk0 + c) * p.H + h;
      S.store(P.state_chunks + at * D * D);
      for (int f = tid; f < D; f += Tr::kThreads) P.z_chunks[at * D + f] = vec(kZ)[f];
    }
    // ---- 3. reference point, scales, exact-path decision ----
    bool exact = false;
    {
      const int f = tid;
      float G0 = 0.f, GC = 0.f;
      if (f < D) { G0 = sG[f]; GC = sG[(valid - 1) * LdG + f]; }
      exact = __syncthreads_or(f < D && G0 - GC > Tr::kMaxDrop);
      if (f < D) {
        float ref, eq, pre, post;
        if (exact) {  // Q' = phi q e^{G}, K' = phi k e^{G_C - G}
          ref = GC; eq = 1.f; pre = ex2(GC); post = 1.f;
        } else {
          ref = 0.5f * (G0 + GC); eq = ex2(ref); pre = eq; post = ex2(GC - ref);
        }
        const float z = vec(kZ)[f];
        vec(kRef)[f] = ref; vec(kEq)[f] = eq; vec(kPre)[f] = pre; vec(kPost)[f] = post;
        vec(kZq)[f] = z * eq;
        vec(kZ)[f] = z * pre;
        vec(kZk)[f] = 0.f;
      }
      if (tid < C) sDen[tid] = 0.f;
    }
    __syncthreads();
    // ---- 4. e^r S for the inter-chunk term (T), S <- pre S; feature maps -> Q', K' ----
    {
      const float* eq = vec(kEq);
      const float* pre = vec(kPre);
#pragma unroll
      for (int j = 0; j < Tr::kStateNT; ++j) {
        float(&a)[4] = S.acc[j];
        const int f0 = S.m0() + ln.gr, v0 = S.n0() + 8 * j + 2 * ln.gc;
        st2(sS + f0 * LdX + v0, a[0] * eq[f0], a[1] * eq[f0]);
        st2(sS + (f0 + 8) * LdX + v0, a[2] * eq[f0 + 8], a[3] * eq[f0 + 8]);
        a[0] *= pre[f0]; a[1] *= pre[f0]; a[2] *= pre[f0 + 8]; a[3] *= pre[f0 + 8];
      }
    }
    {
      const bool is_k = warp >= 4;  // warps 0-3: q bands, 4-7: k bands
      feature_map_band<Tr, kWp>(is_k ? sXk : sXq, is_k ? sFk : sFq, sWphi, sG, vec(kRef), vec(kZq), is_k ? sK : sQ,
                                (warp & 3) * 16, valid, is_k, !exact, vec(kZk), sDen);
    }
    __syncthreads();
    if (P.qprime != nullptr && !exact) {  // training: Q' (and at D = 128 K') for the backward
      const size_t at = (size_t(sq.tok0 + t0) * p.H + h) * D;
      T* qp = static_cast<T*>(P.qprime) + at;
      T* kp = P.kprime != nullptr ? static_cast<T*>(P.kprime) + at : nullptr;
      for (int i = tid; i < valid * (D / kVec); i += Tr::kThreads) {
        const int r = i / (D / kVec), cv = (i - r * (D / kVec)) * kVec;
        *reinterpret_cast<uint4*>(qp + size_t(r) * p.H * D + cv) = *reinterpret_cast<const uint4*>(sQ + r * LdX + cv);
        if (kp != nullptr)
          *reinterpret_cast<uint4*>(kp + size_t(r) * p.H * D + cv) = *reinterpret_cast<const uint4*>(sK + r * LdX + cv);
      }
    }
    // raw q, k and G are dead from here on (the exact path still reads G): prefetch chunk c + 1
    if (!exact && c + 1 < seg.c1) issue_loads(c + 1);
    if (!exact) {
      // ---- 5. A = mask(Q' K'^T) (T), rowsum(A) -> den ----
      constexpr int kNTA = 8 / Tr::kAW;  // n-tiles of A per warp
      const int i = warp / Tr::kAW, n0 = (warp % Tr::kAW) * 8 * kNTA;
      if (n0 <= 16 * i + 15) {
        float acc[kNTA][4] = {};
        tile_mma_smem<T, kNTA, false, false>(acc, sQ, LdX, sK, LdX, 16 * i, n0, 0, D);
        float rs[2] = {0.f, 0.f};
#pragma unroll
        for (int j = 0; j < kNTA; ++j) {
          tile_for_each(acc[j], 16 * i, n0 + 8 * j, [&](int r, int cc, float& x) {
            if (cc > r) x = 0.f;
            rs[r == 16 * i + ln.gr ? 0 : 1] += x;
          });
          st2(sA + (16 * i + ln.gr) * LdA + n0 + 8 * j + 2 * ln.gc, acc[j][0], acc[j][1]);
          st2(sA + (16 * i + ln.gr + 8) * LdA + n0 + 8 * j + 2 * ln.gc, acc[j][2], acc[j][3]);
        }
#pragma unroll
        for (int hr = 0; hr < 2; ++hr) {
          rs[hr] += __shfl_xor_sync(0xffffffffu, rs[hr], 1);
          rs[hr] += __shfl_xor_sync(0xffffffffu, rs[hr], 2);
        }
        if (ln.gc == 0) {
          atomicAdd(&sDen[16 * i + ln.gr], rs[0]);
          atomicAdd(&sDen[16 * i + ln.gr + 8], rs[1]);
        }
      }
    } else {
      // ---- 5'. exact path: A from the raw feature maps with per-pair exponents <= 0 ----
      for (int e = tid; e < C * C; e += Tr::kThreads) {
        const int t = e / C, s = e - t * C;
        float a = 0.f;
        if (s <= t && t < valid)
          for (int f = 0; f < D; ++f)
            a = fmaf(to_float(sQ[t * LdX + f]) * to_float(sK[s * LdX + f]), ex2(sG[t * LdG + f] - sG[s * LdG + f]), a);
        sA[t * LdA + s] = from_float<T>(a);
        if (a != 0.f) atomicAdd(&sDen[t], a);
      }
      __syncthreads();
      const float* ref = vec(kRef);  // = G_C here
      for (int e = tid; e < C * D; e += Tr::kThreads) {
        const int t = e / D, f = e - t * D;
        const float g = sG[t * LdG + f];
        const float qv = to_float(sQ[t * LdX + f]) * ex2(g);
        sQ[t * LdX + f] = from_float<T>(qv);
        sK[t * LdX + f] = from_float<T>(t < valid ? to_float(sK[t * LdX + f]) * ex2(ref[f] - g) : 0.f);
        atomicAdd(&sDen[t], qv * vec(kZq)[f]);
      }
      __syncthreads();
      if (c + 1 < seg.c1) issue_loads(c + 1);
      for (int f = tid; f < D; f += Tr::kThreads) {
        float s = 0.f;
        for (int t = 0; t < C; ++t) s += to_float(sK[t * LdX + f]);
        vec(kZk)[f] = s;
      }
      if (tid == 0 && P.fallback_chunks != nullptr) atomicAdd(P.fallback_chunks, 1);
    }
    __syncthreads();
    // ---- 6. outputs N = Q' (e^r S) + A v, y = N / den ----
    {
      constexpr int kNT = D / 8 / Tr::kAW;
      const int m0 = (warp / Tr::kAW) * 16, n0 = (warp % Tr::kAW) * (D / Tr::kAW);
      float acc[kNT][4] = {};
      tile_mma_smem<T, kNT, false, true>(acc, sQ, LdX, sS, LdX, m0, n0, 0, D);
      tile_mma_smem<T, kNT, false, true>(acc, sA, LdA, sVc, LdX, m0, n0, 0, m0 + 16);
      T* y = static_cast<T*>(p.y) + (size_t(sq.tok0 + t0) * p.H + h) * D;
#pragma unroll
      for (int hr = 0; hr < 2; ++hr) {
        const int r = m0 + ln.gr + 8 * hr;
        if (r >= valid) continue;
        const float inv = p.normalize ? 1.f / (sDen[r] + p.eps) : 1.f;
        if (P.den != nullptr && n0 == 0 && ln.gc == 0) P.den[size_t(sq.tok0 + t0 + r) * p.H + h] = 1.f / inv;
#pragma unroll
        for (int j = 0; j < kNT; ++j)
          st2(y + size_t(r) * p.H * D + n0 + 8 * j + 2 * ln.gc, acc[j][2 * hr] * inv, acc[j][2 * hr + 1] * inv);
      }
    }
    // ---- 7. state: S <- post (S + K'^T v), z <- post (z + colsum K') ----
    tile_mma_smem<T, Tr::kStateNT, true, true>(S.acc, sK, LdX, sVc, LdX, S.m0(), S.n0(), 0, C);
    {
      const float* post = vec(kPost);
#pragma unroll
      for (int j = 0; j < Tr::kStateNT; ++j) {
        const int f0 = S.m0() + ln.gr;
        S.acc[j][0] *= post[f0]; S.acc[j][1] *= post[f0]; S.acc[j][2] *= post[f0 + 8]; S.acc[j][3] *= post[f0 + 8];
      }
    }
    for (int f = tid; f < D; f += Tr::kThreads) vec(kZ)[f] = (vec(kZ)[f] + vec(kZk)[f]) * vec(kPost)[f];
  }
  __syncthreads();

  // ---- end of the sequence: final state ----
  if (seg.c1 == sq.nc && p.sT != nullptr) {
    S.store(p.sT + (size_t(seg.n) * p.H + h) * D * D);
    for (int f = tid; f < D; f += Tr::kThreads) p.zT[(size_t(seg.n) * p.H + h) * D + f] = vec(kZ)[f];
  }
}

// ---- segment-local state pass ------------------------------------------------------
// Two chunks per iteration: warps 0-3 build K' = φk e^{G_C - G} (<= φk, no guard needed)
// of the first chunk, warps 4-7 of the second, so every warp works in the feature-map
// phase; then S <- e^{G_C} S + K'^T v per chunk, in order. Writes the segment's end
// state and total decay for the combine pass; the last segment of a sequence skips it.
template <class Tr, int kWp>
struct StateLayout {
  static constexpr int C = Tr::kC, D = Tr::kD;
  using T = typename Tr::T;
  size_t x, v, g, k, wphi, fk, vec, total;
  __host__ __device__ StateLayout() {
    size_t o = 0;
    auto take = [&](size_t bytes) { const size_t at = o; o += (bytes + 15) / 16 * 16; return at; };
    x = take(sizeof(T) * (2 * C + 8) * Tr::kLdX);  // raw k rows of both chunks + halo
    v = take(sizeof(T) * 2 * C * Tr::kLdX);
    g = take(sizeof(float) * 2 * C * Tr::kLdG);
    k = take(sizeof(T) * 2 * C * Tr::kLdX);
    wphi = take(sizeof(T) * D * Tr::kLdW);
    fk = take(sizeof(float) * D * kWp);
    vec = take(sizeof(float) * 8 * D);
    total = o;
  }
};

template <class Tr, int kWp>
__global__ void __launch_bounds__(Tr::kThreads, Tr::kMinBlocks) lawcat_state_kernel(const LawcatFwdParams P) {
  using T = typename Tr::T;
  constexpr int C = Tr::kC, D = Tr::kD, LdX = Tr::kLdX, LdG = Tr::kLdG, kVec = 8;
  const GlaParams& p = P.gla;
  const StateLayout<Tr, kWp> L;
  extern __shared__ __align__(16) unsigned char smem[];
  T* sX = reinterpret_cast<T*>(smem + L.x);
  T* sV = reinterpret_cast<T*>(smem + L.v);
  float* sG = reinterpret_cast<float*>(smem + L.g);
  T* sK = reinterpret_cast<T*>(smem + L.k);
  T* sWphi = reinterpret_cast<T*>(smem + L.wphi);
  float* sFk = reinterpret_cast<float*>(smem + L.fk);
  float* sZ = reinterpret_cast<float*>(smem + L.vec);  // [8][D]: z, gamma, ref[2], pre[2], colsum[2]
  float* sGam = sZ + D;
  float* sRef = sZ + 2 * D;
  float* sPre = sZ + 4 * D;
  float* sCol = sZ + 6 * D;

  const int seg_id = blockIdx.x, h = blockIdx.y, tid = threadIdx.x, warp = tid / 32;
  const gla::SegInfo seg = gla::get_seg(p, seg_id);
  const gla::SeqInfo sq = gla::get_seq<C>(p, seg.n);
  if (seg.c1 == sq.nc) return;  // the last segment's local state is never needed
  const int hk = h / (p.H / p.Hkv);
  const T* k_base = static_cast<const T*>(p.k) + sq.b * p.k_batch_stride + hk * p.k_head_stride;
  const T* v_base = static_cast<const T*>(p.v) + sq.b * p.v_batch_stride + hk * p.v_head_stride;
  const float* g_base = P.gate_cumsum + hk * D;
  stage_head_constants<Tr, kWp>(P, h, nullptr, sFk, sWphi);
  for (int f = tid; f < D; f += Tr::kThreads) { sZ[f] = 0.f; sGam[f] = 1.f; }
  gla::StateTile<Tr> S;
  S.zero();

  for (int c = seg.c0; c < seg.c1; c += 2) {
    const int nch = min(2, seg.c1 - c), t0 = c * C, rows = min(nch * C, sq.len - t0);
    __syncthreads();
    {
      constexpr int kPerRow = D / kVec;
      load_raw_rows<Tr, kWp>(sX, k_base, p.k_row_stride, sq, t0, nch * C);
      for (int i = tid; i < nch * C * kPerRow; i += Tr::kThreads) {
        const int r = i / kPerRow, cv = (i - r * kPerRow) * kVec;
        const bool ok = r < rows;
        cp_async16(sV + r * LdX + cv, v_base + (sq.row0 + (ok ? t0 + r : 0)) * p.v_row_stride + cv, ok);
      }
      load_gate_rows<Tr>(sG, g_base, p, sq, t0, nch * C, rows);
      cp_async_wait_all();
    }
    __syncthreads();
    for (int f = tid; f < D; f += Tr::kThreads)
      for (int j = 0; j < nch; ++j) {
        const int valid = min(C, rows - j * C);
        const float GC = sG[(j * C + valid - 1) * LdG + f];
        sRef[j * D + f] = GC;
        sPre[j * D + f] = ex2(GC);
        sCol[j * D + f] = 0.f;
      }
    __syncthreads();
    {
      const int j = warp >> 2;
      if (j < nch)
        feature_map_band<Tr, kWp>(sX + j * C * LdX, sFk, sWphi, sG + j * C * LdG, sRef + j * D, nullptr,
                                  sK + j * C * LdX, (warp & 3) * 16, min(C, rows - j * C), true, true, sCol + j * D,
                                  nullptr);
    }
    __syncthreads();
    const Lane ln;
    for (int j = 0; j < nch; ++j) {
      const float* pre = sPre + j * D;
#pragma unroll
      for (int n = 0; n < Tr::kStateNT; ++n) {
        const int f0 = S.m0() + ln.gr;
        S.acc[n][0] *= pre[f0]; S.acc[n][1] *= pre[f0]; S.acc[n][2] *= pre[f0 + 8]; S.acc[n][3] *= pre[f0 + 8];
      }
      tile_mma_smem<T, Tr::kStateNT, true, true>(S.acc, sK + j * C * LdX, LdX, sV + j * C * LdX, LdX, S.m0(), S.n0(),
                                                 0, C);
    }
    for (int f = tid; f < D; f += Tr::kThreads)
      for (int j = 0; j < nch; ++j) {
        sZ[f] = sZ[f] * sPre[j * D + f] + sCol[j * D + f];
        sGam[f] *= sPre[j * D + f];
      }
  }
  __syncthreads();
  S.store(p.seg_S + (size_t(seg_id) * p.H + h) * D * D);
  for (int f = tid; f < D; f += Tr::kThreads) {
    p.seg_z[(size_t(seg_id) * p.H + h) * D + f] = sZ[f];
    p.seg_gamma[(size_t(seg_id) * p.H + h) * D + f] = sGam[f];
  }
}

}  // namespace lawcat::kernels::fused
