// Host-side launch sequences for one (dtype, head dim); instantiated once per pair in
// inst/ (scripts/gen_kernels.py) so the six variants compile in parallel.
//   forward : [segment-local walk] -> combine -> output walk
//   backward: [segment-local walk] -> combine -> output walk storing chunk states, A, den, dd
//             [reverse segment-local walk] -> reverse combine -> reverse walk storing dS
//             -> chunk-parallel gradients
#pragma once
#include "api.h"
#include "gla/chunk_bwd.cuh"
#include "gla/chunk_fwd.cuh"
#include "gla/combine.cuh"

namespace lawcat::kernels::gla {

template <typename T, int kD>
cudaError_t run_gla_fwd(const GlaParams& p, cudaStream_t stream) {
  using Tr = Traits<T, kD>;
  const dim3 grid(p.num_segs, p.H);
  if (p.num_segs > 0 && p.segs_per_seq > 1)
    LAWCAT_CUDA_TRY(launch_with_smem(gla_fwd_walk_kernel<Tr, false, false>, grid, Tr::kThreads,
                                     FwdSmem<Tr, false>::kBytes, stream, p));
  LAWCAT_CUDA_TRY(launch_combine(p, false, stream));
  if (p.num_segs > 0)
    LAWCAT_CUDA_TRY(launch_with_smem(gla_fwd_walk_kernel<Tr, true, false>, grid, Tr::kThreads,
                                     FwdSmem<Tr, true>::kBytes, stream, p));
  return cudaSuccess;
}

template <typename T, int kD>
cudaError_t run_gla_bwd(const GlaParams& p, cudaStream_t stream) {
  using Tr = Traits<T, kD>;
  const dim3 grid(p.num_segs, p.H);
  const bool multi = p.num_segs > 0 && p.segs_per_seq > 1;
  if (multi)
    LAWCAT_CUDA_TRY(launch_with_smem(gla_fwd_walk_kernel<Tr, false, false>, grid, Tr::kThreads,
                                     FwdSmem<Tr, false>::kBytes, stream, p));
  LAWCAT_CUDA_TRY(launch_combine(p, false, stream));
  if (p.num_segs > 0)
    LAWCAT_CUDA_TRY(launch_with_smem(gla_fwd_walk_kernel<Tr, true, true>, grid, Tr::kThreads,
                                     FwdSmem<Tr, true>::kBytes, stream, p));
  if (multi)
    LAWCAT_CUDA_TRY(launch_with_smem(gla_rev_walk_kernel<Tr, false>, grid, Tr::kThreads, RevSmem<Tr>::kBytes,
                                     stream, p));
  LAWCAT_CUDA_TRY(launch_combine(p, true, stream));
  if (p.num_segs > 0)
    LAWCAT_CUDA_TRY(launch_with_smem(gla_rev_walk_kernel<Tr, true>, grid, Tr::kThreads, RevSmem<Tr>::kBytes,
                                     stream, p));
  if (p.num_chunks > 0)
    LAWCAT_CUDA_TRY(launch_with_smem(gla_bwd_chunk_kernel<Tr>, dim3(p.num_chunks, p.H), Tr::kThreads,
                                     ChunkBwdSmem<Tr>::kBytes, stream, p));
  return cudaSuccess;
}

// Declared here, defined in inst/*.cu.
#define LAWCAT_GLA_EXTERN(T, D)                                                     \
  extern template cudaError_t run_gla_fwd<T, D>(const GlaParams&, cudaStream_t);   \
  extern template cudaError_t run_gla_bwd<T, D>(const GlaParams&, cudaStream_t);

}  // namespace lawcat::kernels::gla
