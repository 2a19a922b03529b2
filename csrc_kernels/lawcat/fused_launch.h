// Launch sequence of the fused LAWCAT forward for one (dtype, head dim): gate cumsums (once
// per chunk and kv head) -> segment-local state pass (only when a sequence has several segments) -> combine (gla's) -> output
// pass. Instantiated per dtype x head dim in inst/fused_fwd_*.cu (scripts/gen_kernels.py) so the
// variants compile in parallel.
#pragma once
#include "gla/combine.cuh"
#include "lawcat/fused_fwd.cuh"

namespace lawcat::kernels::fused {

// Gate cumsums once per (chunk, kv head); the forward and the backward both start with it.
template <typename T, int kD>
cudaError_t launch_gate(const LawcatFwdParams& p, cudaStream_t stream) {
  using GTr = FTraits<T, kD, 8>;  // the gate kernel's tiling assumes 8 warps
  if (p.gla.num_chunks == 0) return cudaSuccess;
  return launch_with_smem(lawcat_gate_kernel<GTr>, dim3(p.gla.num_chunks, p.gla.Hkv), GTr::kThreads,
                          GateLayout<GTr>(p.rank).total, stream, p);
}

template <typename T, int kD, int kWp>
cudaError_t run_lawcat_fwd_w(const LawcatFwdParams& p, cudaStream_t stream) {
  using Tr = FTraits<T, kD>;
  const size_t smem = Layout<Tr, kWp>().total;
  const GlaParams& g = p.gla;
  const dim3 grid(g.num_segs, g.H);
  LAWCAT_CUDA_TRY((launch_gate<T, kD>(p, stream)));
  if (g.num_segs > 0 && g.segs_per_seq > 1)
    LAWCAT_CUDA_TRY(launch_with_smem(lawcat_state_kernel<Tr, kWp>, grid, Tr::kThreads, StateLayout<Tr, kWp>().total,
                                  stream, p));
  LAWCAT_CUDA_TRY(gla::launch_combine(g, false, stream));
  if (g.num_segs > 0)
    LAWCAT_CUDA_TRY(launch_with_smem(lawcat_fwd_kernel<Tr, kWp>, grid, Tr::kThreads, smem, stream, p));
  return cudaSuccess;
}

// Conv widths 1..4 run with 4 taps (zero-padded filters), 5..8 with 8.
template <typename T, int kD>
cudaError_t run_lawcat_fwd(const LawcatFwdParams& p, cudaStream_t stream) {
  return p.width <= 4 ? run_lawcat_fwd_w<T, kD, 4>(p, stream) : run_lawcat_fwd_w<T, kD, 8>(p, stream);
}

#define LAWCAT_FUSED_EXTERN(T, D) extern template cudaError_t run_lawcat_fwd<T, D>(const LawcatFwdParams&, cudaStream_t);

}  // namespace lawcat::kernels::fused
