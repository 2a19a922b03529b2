// Launch sequence of the fused LAWCAT backward for one (dtype, head dim): gate cumsums ->
// dstate pass (only when a sequence has several segments) -> reverse combine (gla's) ->
// gradient pass -> dq rows across segment boundaries (again only with several segments).
// Instantiated per dtype x head dim in inst/fused_bwd_*.cu (scripts/gen_kernels.py); entry point
// in fused_api.cu.
#pragma once
#include "lawcat/fused_bwd.cuh"
#include "lawcat/fused_launch.h"  // launch_gate, gla::launch_combine

namespace lawcat::kernels::fused {

template <typename T, int kD, int kWp>
cudaError_t run_lawcat_bwd_w(const LawcatBwdParams& P, cudaStream_t stream) {
  using Tr = FTraits<T, kD>;
  const LawcatFwdParams& p = P.fwd;
  const GlaParams& g = p.gla;
  const dim3 grid(g.num_segs, g.H);
  LAWCAT_CUDA_TRY((launch_gate<T, kD>(p, stream)));
  if (g.num_segs > 0 && g.segs_per_seq > 1)
    LAWCAT_CUDA_TRY(launch_with_smem(lawcat_dstate_kernel<Tr, kWp>, grid, Tr::kThreads, DStateLayout<Tr>().total,
                                     stream, P));
  LAWCAT_CUDA_TRY(gla::launch_combine(g, true, stream));
  if (g.num_segs > 0) {
    constexpr int kSplit = VSplit<Tr>::kSplit;  // > 1: the splits of a (segment, head) form a cluster
    const dim3 grid3(g.num_segs, g.H, kSplit);
    const size_t smem = BwdLayout<Tr, kWp>().total;
    if constexpr (kSplit > 1)
      LAWCAT_CUDA_TRY(launch_with_smem_cluster_z(lawcat_bwd_kernel<Tr, kWp>, grid3, Tr::kThreads, smem, kSplit, stream, P));
    else
      LAWCAT_CUDA_TRY(launch_with_smem(lawcat_bwd_kernel<Tr, kWp>, grid3, Tr::kThreads, smem, stream, P));
    if (g.segs_per_seq > 1)
      LAWCAT_CUDA_TRY(launch_with_smem(lawcat_dq_edge_kernel<Tr, kWp>, grid, 128, 0, stream, P));
  }
  return cudaSuccess;
}

template <typename T, int kD>
cudaError_t run_lawcat_bwd(const LawcatBwdParams& p, cudaStream_t stream) {
  return p.fwd.width <= 4 ? run_lawcat_bwd_w<T, kD, 4>(p, stream) : run_lawcat_bwd_w<T, kD, 8>(p, stream);
}

#define LAWCAT_FUSED_BWD_EXTERN(T, D) extern template cudaError_t run_lawcat_bwd<T, D>(const LawcatBwdParams&, cudaStream_t);

}  // namespace lawcat::kernels::fused
