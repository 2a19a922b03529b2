// Fused LAWCAT backward, head dim 64 (bf16 and fp16), and its entry point.
#include "api.h"
#include "lawcat/fused_bwd_launch.h"

namespace lawcat::kernels {

// D = 128 needs about 330 KB of shared memory in this layout (over the 227 KB an SM has):
// it takes the unfused backward until the layout is split.
bool lawcat_bwd_supported(DType dtype, int D, int width, int rank) {
  return lawcat_fwd_supported(dtype, D, width, rank) && D == 64;
}

cudaError_t launch_lawcat_bwd(const LawcatBwdParams& p, cudaStream_t stream) {
  const GlaParams& g = p.fwd.gla;
  if (!lawcat_bwd_supported(g.dtype, g.D, p.fwd.width, p.fwd.rank) || g.H <= 0 || g.Hkv <= 0 || g.H % g.Hkv != 0 ||
      g.chunk_size != 64 || p.fwd.gate_cumsum == nullptr || p.fwd.state_chunks == nullptr ||
      p.fwd.z_chunks == nullptr || p.fwd.den == nullptr || p.fwd.qprime == nullptr ||
      p.fwd.gate_dlogit == nullptr || p.dlogit == nullptr || p.db == nullptr || p.y == nullptr || p.dy == nullptr || g.dST != nullptr ||
      g.ds0 != nullptr)
    return cudaErrorInvalidValue;
  if (g.dtype == DType::kBF16) return fused::run_lawcat_bwd<__nv_bfloat16, 64>(p, stream);
  return fused::run_lawcat_bwd<__half, 64>(p, stream);
}

}  // namespace lawcat::kernels
