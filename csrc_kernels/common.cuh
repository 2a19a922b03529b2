// Shared device helpers for csrc_kernels (torch-free):
//   * LAWCAT_CUDA_TRY: return a cudaError_t from a launcher on the first failure.
//   * element conversions for bf16 / fp16 / fp32 (fp32 math everywhere),
//   * 16-byte vector loads/stores between global and shared memory,
//   * warp reductions,
//   * the one matrix primitive every GLA kernel uses: a 16x8 output tile,
//     acc[4] += A(16 x 16) * B(16 x 8), with A and B given by *loaders*
//     (callables returning float2 pairs along k).  16-bit inputs run on the tensor
//     cores (mma.sync m16n8k16, fp32 accumulate); fp32 inputs run on FFMA with the
//     same accumulator layout, so every epilogue is written once.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#define LAWCAT_CUDA_TRY(expr)                      \
  do {                                             \
    cudaError_t lawcat_err_ = (expr);              \
    if (lawcat_err_ != cudaSuccess) return lawcat_err_; \
  } while (0)

// Check the last launch (configuration errors surface here).
#define LAWCAT_LAUNCH_CHECK() LAWCAT_CUDA_TRY(cudaGetLastError())

namespace lawcat::kernels {

// Raise the kernel's dynamic shared-memory limit when it needs more than the default 48 KB.
template <class Kernel>
inline cudaError_t allow_smem(Kernel kernel, size_t smem) {
  return smem > 48 * 1024 ? cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem))
                          : cudaSuccess;
}

// Launch kernel<<<grid, threads, smem, stream>>>(params) (allow_smem first).
template <class Kernel, class Params>
inline cudaError_t launch_with_smem(Kernel kernel, dim3 grid, int threads, size_t smem, cudaStream_t stream,
                                    const Params& params) {
  LAWCAT_CUDA_TRY(allow_smem(kernel, smem));
  kernel<<<grid, threads, smem, stream>>>(params);
  return cudaGetLastError();
}

// The same with clusters of cz CTAs along grid z (grid.z a multiple of cz).
template <class Kernel, class Params>
inline cudaError_t launch_with_smem_cluster_z(Kernel kernel, dim3 grid, int threads, size_t smem, unsigned cz,
                                              cudaStream_t stream, const Params& params) {
  LAWCAT_CUDA_TRY(allow_smem(kernel, smem));
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = grid;
  cfg.blockDim = dim3(threads);
  cfg.dynamicSmemBytes = smem;
  cfg.stream = stream;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeClusterDimension;
  attr[0].val.clusterDim.x = 1;
  attr[0].val.clusterDim.y = 1;
  attr[0].val.clusterDim.z = cz;
  cfg.attrs = attr;
  cfg.numAttrs = 1;
  return cudaLaunchKernelEx(&cfg, kernel, params);
}

// ---- element conversions ----------------------------------------------------
__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float to_float(__half x) { return __half2float(x); }

template <typename T> __device__ __forceinline__ T from_float(float x);
template <> __device__ __forceinline__ float from_float<float>(float x) { return x; }
template <> __device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float x) {
  return __float2bfloat16_rn(x);
}
template <> __device__ __forceinline__ __half from_float<__half>(float x) { return __float2half_rn(x); }

// Elements per 16-byte vector.
template <typename T> struct Vec16 { static constexpr int kN = 16 / sizeof(T); };

// Copy one 16-byte vector (aligned) global -> shared, or write zeros.
__device__ __forceinline__ void copy16(void* dst, const void* src) {
  *reinterpret_cast<uint4*>(dst) = __ldg(reinterpret_cast<const uint4*>(src));
}
__device__ __forceinline__ void zero16(void* dst) {
  *reinterpret_cast<uint4*>(dst) = make_uint4(0u, 0u, 0u, 0u);
}

// ---- warp reductions --------------------------------------------------------
__device__ __forceinline__ float warp_sum(float x) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
  return x;
}

// ---- the tile primitive -------------------------------------------------------
// Accumulator layout (that of mma.sync m16n8k16, lane = 4 * gr + gc):
//   acc[0], acc[1]: row gr,     cols 2gc, 2gc+1
//   acc[2], acc[3]: row gr + 8, cols 2gc, 2gc+1
// Loaders: a(m, k) -> (A[m][k], A[m][k+1]); b(k, n) -> (B[k][n], B[k+1][n]); k even.
struct Lane {
  int gr, gc;
  __device__ __forceinline__ Lane() : gr((threadIdx.x & 31) >> 2), gc(threadIdx.x & 3) {}
};

__device__ __forceinline__ uint32_t pack2(float2 v, __nv_bfloat16*) {
  __nv_bfloat162 h = __floats2bfloat162_rn(v.x, v.y);
  return *reinterpret_cast<uint32_t*>(&h);
}
__device__ __forceinline__ uint32_t pack2(float2 v, __half*) {
  __half2 h = __floats2half2_rn(v.x, v.y);
  return *reinterpret_cast<uint32_t*>(&h);
}
__device__ __forceinline__ float2 unpack2(uint32_t v, __nv_bfloat16*) {
  return __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&v));
}
__device__ __forceinline__ float2 unpack2(uint32_t v, __half*) {
  return __half22float2(*reinterpret_cast<const __half2*>(&v));
}

__device__ __forceinline__ void mma_16816(float (&c)[4], const uint32_t (&a)[4], const uint32_t (&b)[2],
                                          __nv_bfloat16*) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
__device__ __forceinline__ void mma_16816(float (&c)[4], const uint32_t (&a)[4], const uint32_t (&b)[2],
                                          __half*) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

// acc[j] (n-tile j at column n0 + 8j) += A[m0:m0+16, k0:kEnd] * B[k0:kEnd, n0 + 8j ...]
// for j < kNT; the A fragment of each 16-wide k step is loaded once and reused.
// (k0, kEnd multiples of 16.)
template <typename T, int kNT, class ALoad, class BLoad>
__device__ __forceinline__ void tile_mma(float (&acc)[kNT][4], int m0, int n0, int k0, int kEnd,
                                         const ALoad& a, const BLoad& b) {
  const Lane l;
  if constexpr (sizeof(T) == 2) {
    for (int k = k0; k < kEnd; k += 16) {
      uint32_t af[4];
      af[0] = pack2(a(m0 + l.gr, k + 2 * l.gc), (T*)nullptr);
      af[1] = pack2(a(m0 + l.gr + 8, k + 2 * l.gc), (T*)nullptr);
      af[2] = pack2(a(m0 + l.gr, k + 2 * l.gc + 8), (T*)nullptr);
      af[3] = pack2(a(m0 + l.gr + 8, k + 2 * l.gc + 8), (T*)nullptr);
#pragma unroll
      for (int j = 0; j < kNT; ++j) {
        uint32_t bf[2];
        bf[0] = pack2(b(k + 2 * l.gc, n0 + 8 * j + l.gr), (T*)nullptr);
        bf[1] = pack2(b(k + 2 * l.gc + 8, n0 + 8 * j + l.gr), (T*)nullptr);
        mma_16816(acc[j], af, bf, (T*)nullptr);
      }
    }
  } else {
    // fp32: plain FMAs in the same accumulator layout (exact fp32 products).
    for (int k = k0; k < kEnd; k += 2) {
      const float2 lo = a(m0 + l.gr, k), hi = a(m0 + l.gr + 8, k);
#pragma unroll
      for (int j = 0; j < kNT; ++j) {
        const float2 b0 = b(k, n0 + 8 * j + 2 * l.gc), b1 = b(k, n0 + 8 * j + 2 * l.gc + 1);
        acc[j][0] = fmaf(lo.y, b0.y, fmaf(lo.x, b0.x, acc[j][0]));
        acc[j][1] = fmaf(lo.y, b1.y, fmaf(lo.x, b1.x, acc[j][1]));
        acc[j][2] = fmaf(hi.y, b0.y, fmaf(hi.x, b0.x, acc[j][2]));
        acc[j][3] = fmaf(hi.y, b1.y, fmaf(hi.x, b1.x, acc[j][3]));
      }
    }
  }
}

// ---- shared-memory operands: ldmatrix fragments (16-bit) ---------------------------
__device__ __forceinline__ uint32_t smem_u32(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}
__device__ __forceinline__ void ldsm_x4(uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_u32(p)));
}
__device__ __forceinline__ void ldsm_x4_t(uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_u32(p)));
}

// acc[j] += A[m0:m0+16, k0:kEnd] * B[k0:kEnd, n0+8j : n0+8j+8] with both operands in shared
// memory as T:
//   A(m, k) at kATrans ? A[k * lda + m] : A[m * lda + k]
//   B(k, n) at kBTrans ? B[k * ldb + n] : B[n * ldb + k]
// 16-bit: ldmatrix (x4, .trans where the operand is stored the other way) feeding
// mma.sync; rows must start 16-byte aligned (ld a multiple of 8 elements), kNT even.
// fp32: FFMA on scalar loads, same accumulator layout.
template <typename T, int kNT, bool kATrans, bool kBTrans>
__device__ __forceinline__ void tile_mma_smem(float (&acc)[kNT][4], const T* A, int lda, const T* B, int ldb, int m0,
                                              int n0, int k0, int kEnd) {
  if constexpr (sizeof(T) == 2) {
    static_assert(kNT % 2 == 0, "tile_mma_smem: even number of n-tiles");
    const int lane = threadIdx.x & 31, i8 = lane >> 3, r8 = lane & 7;
    for (int k = k0; k < kEnd; k += 16) {
      uint32_t af[4];
      if (!kATrans) ldsm_x4(af, A + (m0 + (lane & 15)) * lda + k + (lane >> 4) * 8);
      else ldsm_x4_t(af, A + (k + r8 + 8 * (i8 >> 1)) * lda + m0 + 8 * (i8 & 1));
#pragma unroll
      for (int j = 0; j < kNT; j += 2) {
        uint32_t bf[4];
        if (!kBTrans) ldsm_x4(bf, B + (n0 + 8 * j + r8 + 8 * (i8 >> 1)) * ldb + k + 8 * (i8 & 1));
        else ldsm_x4_t(bf, B + (k + r8 + 8 * (i8 & 1)) * ldb + n0 + 8 * j + 8 * (i8 >> 1));
        const uint32_t b0[2] = {bf[0], bf[1]}, b1[2] = {bf[2], bf[3]};
        mma_16816(acc[j], af, b0, (T*)nullptr);
        mma_16816(acc[j + 1], af, b1, (T*)nullptr);
      }
    }
  } else {
    auto la = [&](int m, int k) {
      return kATrans ? make_float2(A[k * lda + m], A[(k + 1) * lda + m]) : make_float2(A[m * lda + k], A[m * lda + k + 1]);
    };
    auto lb = [&](int k, int n) {
      return kBTrans ? make_float2(B[k * ldb + n], B[(k + 1) * ldb + n]) : make_float2(B[n * ldb + k], B[n * ldb + k + 1]);
    };
    tile_mma<T, kNT>(acc, m0, n0, k0, kEnd, la, lb);
  }
}

// Visit the four accumulator entries of tile (m0, n0): f(row, col, value&).
template <class Fn>
__device__ __forceinline__ void tile_for_each(float (&acc)[4], int m0, int n0, Fn&& f) {
  const Lane l;
  f(m0 + l.gr, n0 + 2 * l.gc, acc[0]);
  f(m0 + l.gr, n0 + 2 * l.gc + 1, acc[1]);
  f(m0 + l.gr + 8, n0 + 2 * l.gc, acc[2]);
  f(m0 + l.gr + 8, n0 + 2 * l.gc + 1, acc[3]);
}

}  // namespace lawcat::kernels
