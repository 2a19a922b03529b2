// Torch-free check + timing of the fused LAWCAT forward (csrc_kernels/lawcat), for quick
// iterations on the GPU machine: `scripts/gpu.sh harness` compiles it with nvcc alone
// (seconds, no LibTorch) next to csrc_kernels. The LibTorch tests (tests/cuda) check the
// same kernel through its binding; this file exists because a full build costs minutes
// of device time per iteration.
//
//   check: every case vs a float64 token-by-token implementation of the layer (docs/architecture.md; conv, φ,
//          gate, normalized recurrence) on the same bf16/fp16-rounded inputs; outputs
//          NaN-poisoned first; relative error max|y - ref| / max|ref| <= 1e-2.
//   bench: B = 1, H = 32, Hkv = 8, R = 16, W = 4, T = 1K..64K, D = 64 / 128; CUDA events,
//          5 warm-up, median of 25 reps over 3 rotating random input sets.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "api.h"

namespace k = lawcat::kernels;

#define CK(x)                                                                                   \
  do {                                                                                          \
    cudaError_t e_ = (x);                                                                       \
    if (e_ != cudaSuccess) {                                                                    \
      std::fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_)); \
      std::exit(2);                                                                             \
    }                                                                                           \
  } while (0)

static uint16_t f2h(float x, bool bf) {
  if (bf) {
    uint32_t u;
    std::memcpy(&u, &x, 4);
    u += 0x7fff + ((u >> 16) & 1);
    return uint16_t(u >> 16);
  }
  __half h = __float2half_rn(x);
  uint16_t r;
  std::memcpy(&r, &h, 2);
  return r;
}
static float h2f(uint16_t v, bool bf) {
  if (bf) {
    uint32_t u = uint32_t(v) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  }
  __half h;
  std::memcpy(&h, &v, 2);
  return __half2float(h);
}

struct Case {
  std::string name;
  bool bf = true;
  int B = 2, T = 300, H = 4, Hkv = 2, D = 64, W = 4, R = 16;
  std::vector<int> lens;  // packed sequences when non-empty (B = 1, T = sum)
  float gate_bias = 1.f, strong = 0.f;  // b2 ~ U(-gate_bias, gate_bias); strong: b2 of feature 0..3 = strong
  bool init_state = false;
  int seg_chunks = 2;
};

struct Dev {
  void* p = nullptr;
  size_t n = 0;
  void alloc(size_t bytes) { CK(cudaMalloc(&p, std::max<size_t>(bytes, 16))); n = bytes; }
  template <typename E>
  void up(const std::vector<E>& v) { alloc(v.size() * sizeof(E)); CK(cudaMemcpy(p, v.data(), v.size() * sizeof(E), cudaMemcpyHostToDevice)); }
  ~Dev() { if (p) cudaFree(p); }
};

struct Problem {
  Case c;
  int N, Ttot;
  std::vector<int> cu;  // [N+1] row offsets
  std::vector<uint16_t> q, k, v, a;
  std::vector<float> cq, ck, wphi, w2, b2, s0, z0;
};

// Device-side fill for the large benchmark inputs: x = scale * (sum of 4 uniforms - 2) * sqrt(3).
__global__ void fill16_kernel(uint16_t* x, size_t n, uint64_t seed, float scale, bool bf) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) {
    uint64_t h = (i + 1) * 0x9E3779B97F4A7C15ull ^ seed;
    float s = 0.f;
    for (int r = 0; r < 4; ++r) {
      h ^= h >> 33; h *= 0xff51afd7ed558ccdull; h ^= h >> 33;
      s += float(h >> 40) * (1.f / 16777216.f);
    }
    const float v = scale * (s - 2.f) * 1.7320508f;
    if (bf) { __nv_bfloat16 b = __float2bfloat16_rn(v); x[i] = *reinterpret_cast<uint16_t*>(&b); }
    else { __half b = __float2half_rn(v); x[i] = *reinterpret_cast<uint16_t*>(&b); }
  }
}

static Problem make_problem(const Case& c, uint64_t seed, bool host_inputs = true) {
  Problem P;
  P.c = c;
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::uniform_real_distribution<float> ud(-1.f, 1.f);
  if (c.lens.empty()) {
    P.N = c.B;
    P.Ttot = c.B * c.T;
    for (int n = 0; n <= c.B; ++n) P.cu.push_back(n * c.T);
  } else {
    P.N = int(c.lens.size());
    P.cu.push_back(0);
    for (int L : c.lens) P.cu.push_back(P.cu.back() + L);
    P.Ttot = P.cu.back();
  }
  const int H = c.H, Hkv = c.Hkv, D = c.D, W = c.W, R = c.R;
  auto fill16 = [&](std::vector<uint16_t>& x, size_t n, float s) {
    x.resize(n);
    for (auto& e : x) e = f2h(nd(rng) * s, c.bf);
  };
  if (host_inputs) {
    fill16(P.q, size_t(P.Ttot) * H * D, 1.f);
    fill16(P.k, size_t(P.Ttot) * Hkv * D, 1.f);
    fill16(P.v, size_t(P.Ttot) * Hkv * D, 1.f);
    fill16(P.a, size_t(P.Ttot) * R, 1.f);
  }
  P.cq.resize(size_t(H) * D * W);
  P.ck.resize(P.cq.size());
  for (size_t i = 0; i < P.cq.size(); ++i) {
    const bool cur = int(i % W) == W - 1;
    P.cq[i] = (cur ? 1.f : 0.f) + 0.3f * nd(rng);
    P.ck[i] = (cur ? 1.f : 0.f) + 0.3f * nd(rng);
  }
  P.wphi.resize(size_t(H) * D * (D / 2));
  for (auto& e : P.wphi) e = 0.3f * nd(rng);
  P.w2.resize(size_t(Hkv) * D * R);
  for (auto& e : P.w2) e = 0.3f * nd(rng);
  P.b2.resize(size_t(Hkv) * D);
  for (auto& e : P.b2) e = c.gate_bias * ud(rng);
  if (c.strong != 0.f)
    for (int hk = 0; hk < Hkv; ++hk)
      for (int f = 0; f < 4; ++f) P.b2[hk * D + f] = c.strong;
  if (c.init_state) {
    P.s0.resize(size_t(P.N) * H * D * D);
    P.z0.resize(size_t(P.N) * H * D);
    for (auto& e : P.s0) e = nd(rng);
    for (auto& e : P.z0) e = 1.f + std::fabs(nd(rng));
  }
  return P;
}

// float64 reference: y [Ttot, H, D], sT [N, H, D, D], zT [N, H, D].
static void reference(const Problem& P, std::vector<double>& y, std::vector<double>& sT, std::vector<double>& zT) {
  const Case& c = P.c;
  const int H = c.H, Hkv = c.Hkv, D = c.D, W = c.W, R = c.R, f2 = D / 2, g = H / Hkv;
  y.assign(size_t(P.Ttot) * H * D, 0.0);
  sT.assign(size_t(P.N) * H * D * D, 0.0);
  zT.assign(size_t(P.N) * H * D, 0.0);
  auto Q = [&](int row, int h, int f) { return double(h2f(P.q[(size_t(row) * H + h) * D + f], c.bf)); };
  auto K = [&](int row, int hk, int f) { return double(h2f(P.k[(size_t(row) * Hkv + hk) * D + f], c.bf)); };
  auto V = [&](int row, int hk, int f) { return double(h2f(P.v[(size_t(row) * Hkv + hk) * D + f], c.bf)); };
  auto A = [&](int row, int r) { return double(h2f(P.a[size_t(row) * R + r], c.bf)); };
  std::vector<double> u(D), s(f2), phq(D), phk(D), la(D), S(size_t(D) * D), z(D);
  auto phi = [&](int h, std::vector<double>& out) {
    for (int j = 0; j < f2; ++j) {
      double acc = 0;
      for (int d = 0; d < D; ++d) acc += u[d] * P.wphi[(size_t(h) * D + d) * f2 + j];
      s[j] = acc;
    }
    const double mx = *std::max_element(s.begin(), s.end()), mn = *std::min_element(s.begin(), s.end());
    double sp = 0, sm = 0;
    for (int j = 0; j < f2; ++j) { sp += std::exp(s[j] - mx); sm += std::exp(mn - s[j]); }
    for (int j = 0; j < f2; ++j) {
      out[j] = std::max(std::exp(s[j] - mx) / sp, 1e-12);
      out[f2 + j] = std::max(std::exp(mn - s[j]) / sm, 1e-12);
    }
  };
  for (int n = 0; n < P.N; ++n) {
    const int r0 = P.cu[n], len = P.cu[n + 1] - r0;
    for (int h = 0; h < H; ++h) {
      const int hk = h / g;
      if (c.init_state) {
        for (size_t i = 0; i < S.size(); ++i) S[i] = P.s0[(size_t(n) * H + h) * D * D + i];
        for (int f = 0; f < D; ++f) z[f] = P.z0[(size_t(n) * H + h) * D + f];
      } else {
        std::fill(S.begin(), S.end(), 0.0);
        std::fill(z.begin(), z.end(), 0.0);
      }
      for (int t = 0; t < len; ++t) {
        for (int d = 0; d < D; ++d) {
          double acc = 0;
          for (int j = 0; j < W; ++j) {
            const int tt = t - W + 1 + j;
            if (tt >= 0) acc += P.cq[(size_t(h) * D + d) * W + j] * Q(r0 + tt, h, d);
          }
          u[d] = acc;
        }
        phi(h, phq);
        for (int d = 0; d < D; ++d) {
          double acc = 0;
          for (int j = 0; j < W; ++j) {
            const int tt = t - W + 1 + j;
            if (tt >= 0) acc += P.ck[(size_t(h) * D + d) * W + j] * K(r0 + tt, hk, d);
          }
          u[d] = acc;
        }
        phi(h, phk);
        for (int f = 0; f < D; ++f) {
          double x = P.b2[hk * D + f];
          for (int r = 0; r < R; ++r) x += A(r0 + t, r) * P.w2[(size_t(hk) * D + f) * R + r];
          const double ls = std::min(x, 0.0) - std::log1p(std::exp(-std::fabs(x)));
          la[f] = std::exp(ls / 16.0);
        }
        double den = 1e-10;
        for (int f = 0; f < D; ++f) {
          z[f] = la[f] * z[f] + phk[f];
          den += phq[f] * z[f];
        }
        for (int f = 0; f < D; ++f)
          for (int e = 0; e < D; ++e) S[size_t(f) * D + e] = la[f] * S[size_t(f) * D + e] + phk[f] * V(r0 + t, hk, e);
        for (int e = 0; e < D; ++e) {
          double num = 0;
          for (int f = 0; f < D; ++f) num += phq[f] * S[size_t(f) * D + e];
          y[(size_t(r0 + t) * H + h) * D + e] = num / den;
        }
      }
      for (size_t i = 0; i < S.size(); ++i) sT[(size_t(n) * H + h) * D * D + i] = S[i];
      for (int f = 0; f < D; ++f) zT[(size_t(n) * H + h) * D + f] = z[f];
    }
  }
}

// Device copies + params (segment plan as src/ops/gla_cuda.cpp's make_plan).
struct Run {
  Dev q, k, v, a, cq, ck, wphi, w2, b2, s0, z0, y, sT, zT, segS, segz, segg, tables, fb, gcs;
  k::LawcatFwdParams p;
  void setup(const Problem& P, int seg_chunks_override, int sms, int ctas_per_sm) {
    const Case& c = P.c;
    const int H = c.H, D = c.D, C = 64;
    if (!P.q.empty()) {
      q.up(P.q); k.up(P.k); v.up(P.v); a.up(P.a);
    } else {  // benchmark: random inputs generated on the device
      const size_t nq = size_t(P.Ttot) * H * D, nk = size_t(P.Ttot) * c.Hkv * D, na = size_t(P.Ttot) * c.R;
      q.alloc(nq * 2); k.alloc(nk * 2); v.alloc(nk * 2); a.alloc(na * 2);
      const uint64_t sd = uint64_t(P.cq[0] * 1e6f) + 17;
      fill16_kernel<<<1024, 256>>>(static_cast<uint16_t*>(q.p), nq, sd, 1.f, c.bf);
      fill16_kernel<<<1024, 256>>>(static_cast<uint16_t*>(k.p), nk, sd + 1, 1.f, c.bf);
      fill16_kernel<<<1024, 256>>>(static_cast<uint16_t*>(v.p), nk, sd + 2, 1.f, c.bf);
      fill16_kernel<<<1024, 256>>>(static_cast<uint16_t*>(a.p), na, sd + 3, 1.f, c.bf);
      CK(cudaGetLastError());
    }
    cq.up(P.cq); ck.up(P.ck); wphi.up(P.wphi); w2.up(P.w2); b2.up(P.b2);
    y.alloc(size_t(P.Ttot) * H * D * 2);
    sT.alloc(size_t(P.N) * H * D * D * 4);
    zT.alloc(size_t(P.N) * H * D * 4);
    fb.alloc(4);
    CK(cudaMemset(fb.p, 0, 4));
    k::GlaParams& g = p.gla;
    g = k::GlaParams{};
    g.dtype = c.bf ? k::DType::kBF16 : k::DType::kF16;
    g.num_seqs = P.N;
    g.seqlen = c.lens.empty() ? c.T : P.Ttot;
    g.H = H;
    g.Hkv = c.Hkv;
    g.D = D;
    g.q = q.p; g.k = k.p; g.v = v.p;
    g.q_row_stride = int64_t(H) * D; g.q_head_stride = D; g.q_batch_stride = c.lens.empty() ? int64_t(c.T) * H * D : 0;
    g.k_row_stride = int64_t(c.Hkv) * D; g.k_head_stride = D; g.k_batch_stride = c.lens.empty() ? int64_t(c.T) * c.Hkv * D : 0;
    g.v_row_stride = g.k_row_stride; g.v_head_stride = D; g.v_batch_stride = g.k_batch_stride;
    g.chunk_size = C;
    std::vector<int> nc(P.N);
    int chunks = 0;
    for (int n = 0; n < P.N; ++n) { nc[n] = (P.cu[n + 1] - P.cu[n] + C - 1) / C; chunks += nc[n]; }
    int seg_chunks = seg_chunks_override;
    if (seg_chunks <= 0) {
      const int target = ctas_per_sm * sms;
      if (c.lens.empty()) {
        const int nseg = std::max(1, std::min(nc[0], target / std::max(1, P.N * H)));
        seg_chunks = std::max(1, (nc[0] + nseg - 1) / nseg);
      } else {
        const int want = std::max(P.N, target / H);
        seg_chunks = std::max(1, (chunks + want - 1) / want);
      }
    }
    g.seg_chunks = seg_chunks;
    if (c.lens.empty()) {
      g.segs_per_seq = std::max(1, (nc[0] + seg_chunks - 1) / seg_chunks);
      g.num_segs = nc[0] > 0 ? P.N * g.segs_per_seq : 0;
    } else {
      std::vector<int> t_cu(P.cu), t_chunk, t_segoff, t_seq, t_c0, t_c1;
      int acc = 0, maxs = 1;
      for (int n = 0; n < P.N; ++n) {
        t_chunk.push_back(acc);
        t_segoff.push_back(int(t_seq.size()));
        const int ns = (nc[n] + seg_chunks - 1) / seg_chunks;
        maxs = std::max(maxs, ns);
        for (int s = 0; s < ns; ++s) { t_seq.push_back(n); t_c0.push_back(s * seg_chunks); t_c1.push_back(std::min(nc[n], (s + 1) * seg_chunks)); }
        acc += nc[n];
      }
      t_chunk.push_back(acc);
      t_segoff.push_back(int(t_seq.size()));
      std::vector<int> all;
      for (auto* vv : {&t_cu, &t_chunk, &t_segoff, &t_seq, &t_c0, &t_c1}) all.insert(all.end(), vv->begin(), vv->end());
      tables.up(all);
      const int* base = static_cast<const int*>(tables.p);
      const int n1 = P.N + 1, S = int(t_seq.size());
      g.cu_seqlens = base; g.chunk_offsets = base + n1; g.seq_seg_offsets = base + 2 * n1;
      g.seg_seq = base + 3 * n1; g.seg_c0 = base + 3 * n1 + S; g.seg_c1 = base + 3 * n1 + 2 * S;
      g.num_segs = S;
      g.segs_per_seq = maxs;
    }
    g.num_chunks = chunks;
    g.num_slots = chunks + P.N;
    const size_t ns = std::max(g.num_segs, 1);
    segS.alloc(ns * H * D * D * 4); segz.alloc(ns * H * D * 4); segg.alloc(ns * H * D * 4);
    g.seg_S = static_cast<float*>(segS.p); g.seg_z = static_cast<float*>(segz.p); g.seg_gamma = static_cast<float*>(segg.p);
    g.y = y.p; g.sT = static_cast<float*>(sT.p); g.zT = static_cast<float*>(zT.p);
    if (c.init_state) { s0.up(P.s0); z0.up(P.z0); g.s0 = static_cast<float*>(s0.p); g.z0 = static_cast<float*>(z0.p); }
    p.a = a.p;
    p.a_row_stride = c.R;
    p.a_batch_stride = c.lens.empty() ? int64_t(c.T) * c.R : 0;
    p.width = c.W; p.rank = c.R; p.tau = 16.f;
    p.conv_q = static_cast<float*>(cq.p); p.conv_k = static_cast<float*>(ck.p);
    p.wphi = static_cast<float*>(wphi.p); p.w2 = static_cast<float*>(w2.p); p.b2 = static_cast<float*>(b2.p);
    p.fallback_chunks = static_cast<int*>(fb.p);
    gcs.alloc(size_t(P.Ttot) * c.Hkv * D * 4);
    p.gate_cumsum = static_cast<float*>(gcs.p);
  }
};

static bool check_case(const Case& c, int sms) {
  Problem P = make_problem(c, 1234);
  std::vector<double> ry, rs, rz;
  reference(P, ry, rs, rz);
  Run run;
  run.setup(P, c.seg_chunks, sms, 2);
  CK(cudaMemset(run.y.p, 0xff, run.y.n));  // NaN poison
  CK(cudaMemset(run.sT.p, 0xff, run.sT.n));
  CK(cudaMemset(run.zT.p, 0xff, run.zT.n));
  CK(k::launch_lawcat_fwd(run.p, nullptr));
  CK(cudaDeviceSynchronize());
  std::vector<uint16_t> y16(ry.size());
  std::vector<float> sT(rs.size()), zT(rz.size());
  int fb = 0;
  CK(cudaMemcpy(y16.data(), run.y.p, y16.size() * 2, cudaMemcpyDeviceToHost));
  CK(cudaMemcpy(sT.data(), run.sT.p, sT.size() * 4, cudaMemcpyDeviceToHost));
  CK(cudaMemcpy(zT.data(), run.zT.p, zT.size() * 4, cudaMemcpyDeviceToHost));
  CK(cudaMemcpy(&fb, run.fb.p, 4, cudaMemcpyDeviceToHost));
  // ||x - ref|| / ||ref|| as tests/cuda/cuda_check.h's rel_err
  auto err = [&](auto getter, const std::vector<double>& ref, bool& finite) {
    double e = 0, n = 0;
    finite = true;
    for (size_t i = 0; i < ref.size(); ++i) {
      const double x = getter(i);
      if (!std::isfinite(x)) finite = false;
      e += (x - ref[i]) * (x - ref[i]);
      n += ref[i] * ref[i];
    }
    return std::sqrt(e) / std::max(std::sqrt(n), 1e-300);
  };
  bool fy, fs, fz;
  const double ey = err([&](size_t i) { return double(h2f(y16[i], c.bf)); }, ry, fy);
  const double es = err([&](size_t i) { return double(sT[i]); }, rs, fs);
  const double ez = err([&](size_t i) { return double(zT[i]); }, rz, fz);
  const bool ok = fy && fs && fz && ey <= 1e-2 && es <= 1e-2 && ez <= 1e-2;
  std::printf("%-34s rel err y %.2e  S_T %.2e  z_T %.2e  finite %d%d%d  exact-path chunks %d  %s\n", c.name.c_str(), ey,
              es, ez, fy, fs, fz, fb, ok ? "OK" : "FAIL");
  return ok;
}

static void bench(int D, const std::vector<int>& Ts, int sms, int ctas_per_sm) {
  for (int T : Ts) {
    Case c;
    c.B = 1; c.T = T; c.H = 32; c.Hkv = 8; c.D = D; c.W = 4; c.R = 16; c.seg_chunks = 0;
    std::vector<Run> runs(3);
    for (int i = 0; i < 3; ++i) {
      Problem P = make_problem(c, 100 + i, false);
      runs[i].setup(P, 0, sms, ctas_per_sm);
    }
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    for (int i = 0; i < 5; ++i) CK(k::launch_lawcat_fwd(runs[i % 3].p, nullptr));
    std::vector<float> ms;
    for (int i = 0; i < 25; ++i) {
      CK(cudaEventRecord(e0));
      CK(k::launch_lawcat_fwd(runs[i % 3].p, nullptr));
      CK(cudaEventRecord(e1));
      CK(cudaEventSynchronize(e1));
      float t;
      CK(cudaEventElapsedTime(&t, e0, e1));
      ms.push_back(t);
    }
    std::sort(ms.begin(), ms.end());
    int fb = 0;
    CK(cudaMemcpy(&fb, runs[0].fb.p, 4, cudaMemcpyDeviceToHost));
    const double bytes = double(T) * (2.0 * 32 * D * 2 + 2.0 * 8 * D * 2 + 16 * 2);
    std::printf("bench D=%3d T=%6d ctas/SM %d segs %4d : %.4f ms  (HBM floor %.4f ms at 3 TB/s) exact-path %d\n", D, T,
                ctas_per_sm, runs[0].p.gla.segs_per_seq, ms[ms.size() / 2], bytes / 3.0e9, fb);
    CK(cudaEventDestroy(e0));
    CK(cudaEventDestroy(e1));
  }
}

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "all";
  int dev = 0, sms = 0;
  CK(cudaGetDevice(&dev));
  CK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  bool ok = true;
  if (mode == "all" || mode == "check") {
    std::vector<Case> cs;
    Case c;
    c.name = "bf16 D64 B2 T300 segs";
    cs.push_back(c);
    c.name = "bf16 D64 B2 T300 one segment + s0";
    c.seg_chunks = 100; c.init_state = true;
    cs.push_back(c);
    c = Case{}; c.name = "bf16 D128 B2 T300 segs + s0"; c.D = 128; c.init_state = true;
    cs.push_back(c);
    c = Case{}; c.name = "bf16 D64 varlen"; c.lens = {37, 128, 0, 201, 1, 64}; c.B = 1;
    cs.push_back(c);
    c = Case{}; c.name = "bf16 D64 exact path (strong gates)"; c.strong = -400.f;
    cs.push_back(c);
    c = Case{}; c.name = "bf16 D128 exact path (strong gates)"; c.strong = -400.f; c.D = 128; c.T = 130;
    cs.push_back(c);
    c = Case{}; c.name = "bf16 D64 W2 R32"; c.W = 2; c.R = 32;
    cs.push_back(c);
    c = Case{}; c.name = "bf16 D64 W6 T65"; c.W = 6; c.T = 65;
    cs.push_back(c);
    c = Case{}; c.name = "bf16 D64 W1 T1"; c.W = 1; c.T = 1;
    cs.push_back(c);
    c = Case{}; c.name = "fp16 D64 B2 T300"; c.bf = false;
    cs.push_back(c);
    c = Case{}; c.name = "fp16 D128 strong gates"; c.bf = false; c.D = 128; c.strong = -40.f;
    cs.push_back(c);
    c = Case{}; c.name = "bf16 D64 H8 Hkv1 T1000 decaying"; c.H = 8; c.Hkv = 1; c.T = 1000; c.B = 1; c.gate_bias = 6.f;
    cs.push_back(c);
    for (const Case& cc : cs) ok = check_case(cc, sms) && ok;
    std::printf("check: %s\n", ok ? "ALL OK" : "FAILURES");
  }
  if (mode == "profile") bench(64, {16384}, sms, 2);
  if (mode == "profile128") bench(128, {16384}, sms, 1);
  if (mode == "all" || mode == "bench") {
    const std::vector<int> Ts = {1024, 2048, 4096, 8192, 16384, 32768, 65536};
    bench(64, Ts, sms, 2);
    bench(128, Ts, sms, 1);
    bench(128, {16384}, sms, 2);
    bench(64, {16384}, sms, 4);
  }
  return ok ? 0 : 1;
}
