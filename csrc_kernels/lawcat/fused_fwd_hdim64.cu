// Fused LAWCAT forward, head dim 64 (bf16 and fp16).
#include "lawcat/fused_launch.h"

namespace lawcat::kernels::fused {
template cudaError_t run_lawcat_fwd<__nv_bfloat16, 64>(const LawcatFwdParams&, cudaStream_t);
template cudaError_t run_lawcat_fwd<__half, 64>(const LawcatFwdParams&, cudaStream_t);
}  // namespace lawcat::kernels::fused
