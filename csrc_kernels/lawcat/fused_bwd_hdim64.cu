// Fused LAWCAT backward, head dim 64 (bf16 and fp16).
#include "lawcat/fused_bwd_launch.h"

namespace lawcat::kernels::fused {
template cudaError_t run_lawcat_bwd<__nv_bfloat16, 64>(const LawcatBwdParams&, cudaStream_t);
template cudaError_t run_lawcat_bwd<__half, 64>(const LawcatBwdParams&, cudaStream_t);
}  // namespace lawcat::kernels::fused
