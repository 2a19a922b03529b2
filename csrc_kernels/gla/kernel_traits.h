// Compile-time sizes of the GLA kernels for one (dtype, head dim).
//   C = chunk (64; 32 for fp32 with D = 128, to fit shared memory), sub-chunks of 16:
//   intra-chunk scores between different sub-chunks run on the matrix units with
//   exponents <= 0 (reference = end of the column sub-chunk), the 16 x 16 diagonal
//   blocks element-wise in fp32 (products of per-token decays, no positive exponent).
//   256 threads = 8 warps; tiles of 16 x 8 (mma.sync m16n8k16 for 16-bit inputs).
#pragma once
#include <cstddef>

#include "common.cuh"

namespace lawcat::kernels::gla {

template <typename T_, int kD_>
struct Traits {
  using T = T_;
  static constexpr int kD = kD_;  // F = V
  static constexpr bool kTensorCores = sizeof(T) == 2;
  static constexpr int kC = (!kTensorCores && kD == 128) ? 32 : 64;
  static constexpr int kSub = 16;
  static constexpr int kNSub = kC / kSub;
  // 16-bit D = 128: 16 warps (one CTA per SM fits in shared memory; more warps in flight,
  // half the accumulator registers per thread). 16-bit D = 64: 8 warps, 2 CTAs per SM.
  // fp32 (the exact test path): 8 warps, 1 CTA per SM.
  static constexpr int kWarps = (kTensorCores && kD == 128) ? 16 : 8;
  static constexpr int kMinBlocks = (kTensorCores && kD == 64) ? 2 : 1;
  static constexpr int kThreads = 32 * kWarps;
  // Shared-memory row strides (elements): 16 bytes of padding per row.
  static constexpr int kLdE = kD + 16 / int(sizeof(T));   // T rows of D
  static constexpr int kLdCE = kC + 16 / int(sizeof(T));  // T rows of C
  static constexpr int kLdF = kD + 4;                     // fp32 rows of D
  static constexpr int kLdCF = kC + 4;                    // fp32 rows of C

  // State GEMM [F x V] = kD x kD: warp -> one m-tile (16 rows of F), kStateNT n-tiles.
  static constexpr int kStateWPM = kWarps / (kD / 16);    // warps per m-tile
  static constexpr int kStateNT = (kD / 8) / kStateWPM;
  // Row GEMMs [C x D] (outputs, dq, dk, dv): warp -> one m-tile (16 rows), kRowNT n-tiles.
  static constexpr int kRowWPM = kWarps / (kC / 16);
  static constexpr int kRowNT = (kD / 8) / kRowWPM;
  // Square GEMM [C x C] (dA): warp -> one m-tile, kSqNT n-tiles.
  static constexpr int kSqWPM = kWarps / (kC / 16);
  static constexpr int kSqNT = (kC / 8) / kSqWPM;
  // Forward diagonal blocks: thread = (column s, feature group fg), features f = ff * kFG + fg.
  static constexpr int kFG = kThreads / kC;
  static constexpr int kFPerG = kD / kFG;

  static_assert(kStateWPM >= 1 && kStateNT >= 1 && kRowNT >= 1 && kSqNT >= 1, "tiling");
  static_assert(kWarps % (kD / 16) == 0 && kWarps % (kC / 16) == 0, "tiling");
};

// Bump allocator for compile-time shared-memory layouts (16-byte aligned pieces).
constexpr size_t smem_align(size_t x) { return (x + 15) / 16 * 16; }

}  // namespace lawcat::kernels::gla
