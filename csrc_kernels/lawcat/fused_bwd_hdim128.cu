// Fused LAWCAT backward, head dim 128 (bf16 and fp16): two CTAs per (segment, head), one per
// half of the value columns (VSplit), to fit shared memory.
#include "lawcat/fused_bwd_launch.h"

namespace lawcat::kernels::fused {
template cudaError_t run_lawcat_bwd<__nv_bfloat16, 128>(const LawcatBwdParams&, cudaStream_t);
template cudaError_t run_lawcat_bwd<__half, 128>(const LawcatBwdParams&, cudaStream_t);
}  // namespace lawcat::kernels::fused
