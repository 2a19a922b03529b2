// Fused LAWCAT forward and backward entry points: checks and dtype / head-dim dispatch.
#include "api.h"
#include "lawcat/fused_bwd_launch.h"
#include "lawcat/fused_launch.h"
#include "static_switch.h"

namespace lawcat::kernels::fused {
LAWCAT_FUSED_EXTERN(__nv_bfloat16, 64)
LAWCAT_FUSED_EXTERN(__nv_bfloat16, 128)
LAWCAT_FUSED_EXTERN(__half, 64)
LAWCAT_FUSED_EXTERN(__half, 128)
LAWCAT_FUSED_BWD_EXTERN(__nv_bfloat16, 64)
LAWCAT_FUSED_BWD_EXTERN(__nv_bfloat16, 128)
LAWCAT_FUSED_BWD_EXTERN(__half, 64)
LAWCAT_FUSED_BWD_EXTERN(__half, 128)
}  // namespace lawcat::kernels::fused

namespace lawcat::kernels {

cudaError_t launch_lawcat_fwd(const LawcatFwdParams& p, cudaStream_t stream) {
  const GlaParams& g = p.gla;
  if (!lawcat_fwd_supported(g.dtype, g.D, p.width, p.rank) || g.H <= 0 || g.Hkv <= 0 || g.H % g.Hkv != 0 ||
      g.chunk_size != 64 || p.gate_cumsum == nullptr)
    return cudaErrorInvalidValue;
  if (g.dtype == DType::kBF16)
    return LAWCAT_HEADDIM_SWITCH(g.D, kD, [&] { return fused::run_lawcat_fwd<__nv_bfloat16, kD>(p, stream); });
  return LAWCAT_HEADDIM_SWITCH(g.D, kD, [&] { return fused::run_lawcat_fwd<__half, kD>(p, stream); });
}

cudaError_t launch_lawcat_bwd(const LawcatBwdParams& p, cudaStream_t stream) {
  const GlaParams& g = p.fwd.gla;
  if (!lawcat_bwd_supported(g.dtype, g.D, p.fwd.width, p.fwd.rank) || g.H <= 0 || g.Hkv <= 0 || g.H % g.Hkv != 0 ||
      g.chunk_size != 64 || p.fwd.gate_cumsum == nullptr || p.fwd.state_chunks == nullptr ||
      p.fwd.z_chunks == nullptr || p.fwd.den == nullptr || p.fwd.qprime == nullptr ||
      p.fwd.gate_dlogit == nullptr || p.dlogit == nullptr || p.db == nullptr || p.y == nullptr || p.dy == nullptr ||
      p.dq == nullptr || (g.segs_per_seq > 1 && p.dq_edge == nullptr) ||
      (lawcat_bwd_reads_kprime(g.D) && p.fwd.kprime == nullptr) || g.dST != nullptr || g.ds0 != nullptr)
    return cudaErrorInvalidValue;
  if (g.dtype == DType::kBF16)
    return LAWCAT_HEADDIM_SWITCH(g.D, kD, [&] { return fused::run_lawcat_bwd<__nv_bfloat16, kD>(p, stream); });
  return LAWCAT_HEADDIM_SWITCH(g.D, kD, [&] { return fused::run_lawcat_bwd<__half, kD>(p, stream); });
}

}  // namespace lawcat::kernels
