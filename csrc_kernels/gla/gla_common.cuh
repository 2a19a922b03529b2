// Pieces shared by the GLA kernels: sequence / segment / chunk bookkeeping, chunk
// loads into shared memory (zero rows past the sequence end: zero q, k, v and a zero
// log-gate make padded rows contribute nothing), column scans, state tile I/O.
#pragma once
#include "api.h"
#include "gla/kernel_traits.h"

namespace lawcat::kernels::gla {

struct SeqInfo {
  int b, row0, len, tok0, nc, chunk0, slot0;
};

template <int kC>
__device__ __forceinline__ SeqInfo get_seq(const GlaParams& p, int n) {
  SeqInfo s;
  if (p.cu_seqlens != nullptr) {
    const int r0 = p.cu_seqlens[n], r1 = p.cu_seqlens[n + 1];
    s.b = 0;
    s.row0 = r0;
    s.len = r1 - r0;
    s.tok0 = r0;
    s.nc = (s.len + kC - 1) / kC;
    s.chunk0 = p.chunk_offsets[n];
    s.slot0 = s.chunk0 + n;
  } else {
    s.b = n;
    s.row0 = 0;
    s.len = p.seqlen;
    s.tok0 = n * p.seqlen;
    s.nc = (p.seqlen + kC - 1) / kC;
    s.chunk0 = n * s.nc;
    s.slot0 = n * (s.nc + 1);
  }
  return s;
}

struct SegInfo {
  int n, c0, c1;
};

__device__ __forceinline__ SegInfo get_seg(const GlaParams& p, int id) {
  SegInfo s;
  if (p.cu_seqlens != nullptr) {
    s.n = p.seg_seq[id];
    s.c0 = p.seg_c0[id];
    s.c1 = p.seg_c1[id];
  } else {
    s.n = id / p.segs_per_seq;
    const int si = id - s.n * p.segs_per_seq;
    s.c0 = si * p.seg_chunks;
    s.c1 = min((p.seqlen + p.chunk_size - 1) / p.chunk_size, s.c0 + p.seg_chunks);
  }
  return s;
}

// Global chunk id -> (sequence, chunk within it).
__device__ __forceinline__ void chunk_of(const GlaParams& p, int id, int& n, int& c) {
  if (p.cu_seqlens != nullptr) {
    int lo = 0, hi = p.num_seqs - 1;  // last n with chunk_offsets[n] <= id
    while (lo < hi) {
      const int mid = (lo + hi + 1) / 2;
      if (p.chunk_offsets[mid] <= id) lo = mid; else hi = mid - 1;
    }
    n = lo;
    c = id - p.chunk_offsets[n];
  } else {
    const int nc = (p.seqlen + p.chunk_size - 1) / p.chunk_size;
    n = id / nc;
    c = id - n * nc;
  }
}

// Load rows [0, kC) of a [rows, D] tile (row r at src + r * row_stride, D contiguous) into
// shared memory with row stride ld; rows >= valid are zero. 16-byte vectors.
template <class Tr, typename E>
__device__ __forceinline__ void load_tile(E* dst, int ld, const E* src, int64_t row_stride, int valid) {
  constexpr int kVec = 16 / sizeof(E);
  constexpr int kPerRow = Tr::kD / kVec;
  for (int i = threadIdx.x; i < Tr::kC * kPerRow; i += Tr::kThreads) {
    const int r = i / kPerRow, cv = (i - r * kPerRow) * kVec;
    if (r < valid) copy16(dst + r * ld + cv, src + r * row_stride + cv);
    else zero16(dst + r * ld + cv);
  }
}

// In-place inclusive scan down each column of a [kC, kD] fp32 tile (forward: cumsum over
// rows; kReverse: suffix sums). Thread = (column f = tid % D, part = tid / D); each part
// loads its kC / parts rows into registers, scans them, publishes its total in `scratch`
// ([parts][D] floats), and adds the totals of the parts before (after) it.
// Starts reading without a barrier (callers sync before); ends with __syncthreads().
template <class Tr>
struct Scan {
  static constexpr int kParts = Tr::kThreads / Tr::kD;
  static constexpr int kRows = Tr::kC / kParts;
  static constexpr int kScratch = kParts * Tr::kD;  // floats
};
template <class Tr, bool kReverse>
__device__ __forceinline__ void column_scan(float* buf, int ld, float* scratch) {
  constexpr int kParts = Scan<Tr>::kParts, kRows = Scan<Tr>::kRows;
  const int f = threadIdx.x % Tr::kD, part = threadIdx.x / Tr::kD;
  float* col = buf + (part * kRows) * ld + f;
  float x[kRows];
#pragma unroll
  for (int r = 0; r < kRows; ++r) x[r] = col[r * ld];
  if (!kReverse) {
#pragma unroll
    for (int r = 1; r < kRows; ++r) x[r] += x[r - 1];
    scratch[part * Tr::kD + f] = x[kRows - 1];
  } else {
#pragma unroll
    for (int r = kRows - 2; r >= 0; --r) x[r] += x[r + 1];
    scratch[part * Tr::kD + f] = x[0];
  }
  __syncthreads();
  float off = 0.f;
#pragma unroll
  for (int q = 0; q < kParts; ++q)
    if (kReverse ? q > part : q < part) off += scratch[q * Tr::kD + f];
#pragma unroll
  for (int r = 0; r < kRows; ++r) col[r * ld] = x[r] + off;
  __syncthreads();
}

// Local inclusive cumsum inside each 16-row sub-chunk (every part is exactly one sub-chunk):
// L[t] = sum of g over rows 16 * (t / 16) .. t. Exponents are then formed from sums over at
// most one sub-chunk plus whole-sub-chunk totals (tables), never as differences of large
// in-chunk cumulative sums (which lose fp32 precision after strong decays).
template <class Tr>
__device__ __forceinline__ void column_scan_local16(float* buf, int ld) {
  static_assert(Scan<Tr>::kRows == 16, "one part per 16-row sub-chunk");
  const int f = threadIdx.x % Tr::kD, part = threadIdx.x / Tr::kD;
  float* col = buf + (part * 16) * ld + f;
  float x[16];
#pragma unroll
  for (int r = 0; r < 16; ++r) x[r] = col[r * ld];
#pragma unroll
  for (int r = 1; r < 16; ++r) x[r] += x[r - 1];
#pragma unroll
  for (int r = 0; r < 16; ++r) col[r * ld] = x[r];
  __syncthreads();
}

// Decay tables from local cumsums L (one thread per feature f): T_i = L[16i+15] (sub-chunk
// totals), G_C = sum_i T_i;  EC = e^{G_C};  Ekd[i] = e^{sum_{i'>i} T};  Er[i] = e^{sum_{i'<i} T + L[16i]};
// logO[i] = sum_{i'<i} T;  logY[i][j] = sum_{j<i'<i} T  (j < i).
template <class Tr>
__device__ __forceinline__ void decay_tables(const float* L, int ld, int f, float* EC, float* Ekd, float* Er,
                                             float* logO, float* logY) {
  constexpr int NS = Tr::kNSub, D = Tr::kD;
  float tot[NS];
#pragma unroll
  for (int i = 0; i < NS; ++i) tot[i] = L[(16 * i + 15) * ld + f];
  float before = 0.f;
#pragma unroll
  for (int i = 0; i < NS; ++i) {
    float after = 0.f;
#pragma unroll
    for (int q = i + 1; q < NS; ++q) after += tot[q];
    if (Ekd != nullptr) Ekd[i * D + f] = __expf(after);
    if (Er != nullptr) Er[i * D + f] = __expf(before + L[(16 * i) * ld + f]);
    if (logO != nullptr) logO[i * D + f] = before;
    if (logY != nullptr) {
      float mid = 0.f;
#pragma unroll
      for (int j = i - 1; j >= 0; --j) {
        logY[(i * NS + j) * D + f] = mid;
        mid += tot[j];
      }
    }
    before += tot[i];
  }
  if (EC != nullptr) EC[f] = __expf(before);
}

// Column sums of a [kC, kD] tile of T (optionally weighted per row): thread (f, part) sums
// its rows and writes the partial to scratch[part][f]; the caller adds the parts after a
// barrier (z_sum_parts).
template <class Tr, typename E, class RowWeight>
__device__ __forceinline__ void column_sum_parts(const E* buf, int ld, float* scratch, RowWeight&& wt) {
  constexpr int kRows = Scan<Tr>::kRows;
  const int f = threadIdx.x % Tr::kD, part = threadIdx.x / Tr::kD;
  float s = 0.f;
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    const int row = part * kRows + r;
    s = fmaf(to_float(buf[row * ld + f]), wt(row, f), s);
  }
  scratch[part * Tr::kD + f] = s;
}
template <class Tr>
__device__ __forceinline__ float z_sum_parts(const float* scratch, int f) {
  float s = 0.f;
#pragma unroll
  for (int q = 0; q < Scan<Tr>::kParts; ++q) s += scratch[q * Tr::kD + f];
  return s;
}

// State tiles: a warp owns m-tile (warp / kStateWPM) and kStateNT n-tiles of the
// [D x D] state. These visit / load / store that fragment.
template <class Tr>
struct StateTile {
  static constexpr int kNT = Tr::kStateNT;
  float acc[kNT][4];
  __device__ __forceinline__ int m0() const { return (threadIdx.x / 32) / Tr::kStateWPM * 16; }
  __device__ __forceinline__ int n0() const { return (threadIdx.x / 32) % Tr::kStateWPM * kNT * 8; }
  template <class Fn>
  __device__ __forceinline__ void for_each(Fn&& fn) {
#pragma unroll
    for (int j = 0; j < kNT; ++j) tile_for_each(acc[j], m0(), n0() + 8 * j, fn);
  }
  __device__ __forceinline__ void zero() {
#pragma unroll
    for (int j = 0; j < kNT; ++j) acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = 0.f;
  }
  __device__ __forceinline__ void load(const float* src) {  // src [D][D] row-major
    for_each([&](int r, int c, float& v) { v = src[r * Tr::kD + c]; });
  }
  __device__ __forceinline__ void store(float* dst) {
    for_each([&](int r, int c, float& v) { dst[r * Tr::kD + c] = v; });
  }
};

}  // namespace lawcat::kernels::gla
