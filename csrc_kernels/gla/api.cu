// GLA entry points: dtype / head-dim dispatch to the per-pair instantiations in inst/.
#include "api.h"
#include "gla/launch_template.h"
#include "static_switch.h"

namespace lawcat::kernels::gla {
LAWCAT_GLA_EXTERN(float, 64)
LAWCAT_GLA_EXTERN(float, 128)
LAWCAT_GLA_EXTERN(__nv_bfloat16, 64)
LAWCAT_GLA_EXTERN(__nv_bfloat16, 128)
LAWCAT_GLA_EXTERN(__half, 64)
LAWCAT_GLA_EXTERN(__half, 128)
}  // namespace lawcat::kernels::gla

namespace lawcat::kernels {

int gla_chunk_size(DType dtype, int D) { return (dtype == DType::kF32 && D == 128) ? 32 : 64; }

static bool check(const GlaParams& p) {
  return p.H > 0 && p.Hkv > 0 && p.H % p.Hkv == 0 && (p.D == 64 || p.D == 128) &&
         p.chunk_size == gla_chunk_size(p.dtype, p.D);
}

cudaError_t launch_gla_fwd(const GlaParams& p, cudaStream_t stream) {
  if (!check(p)) return cudaErrorInvalidValue;
  return LAWCAT_DTYPE_SWITCH(p.dtype, T, [&] {
    return LAWCAT_HEADDIM_SWITCH(p.D, kD, [&] { return gla::run_gla_fwd<T, kD>(p, stream); });
  });
}

cudaError_t launch_gla_bwd(const GlaParams& p, cudaStream_t stream) {
  if (!check(p)) return cudaErrorInvalidValue;
  return LAWCAT_DTYPE_SWITCH(p.dtype, T, [&] {
    return LAWCAT_HEADDIM_SWITCH(p.D, kD, [&] { return gla::run_gla_bwd<T, kD>(p, stream); });
  });
}

}  // namespace lawcat::kernels
