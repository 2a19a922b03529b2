// Matmul precision of the training path (and of the benchmarks that mirror it).
#pragma once
#include <c10/core/Device.h>

namespace lawcat::model {

// On CUDA, fp32 matrix products (the LAWCAT feature map and gate with their fp32 weights, their
// weight gradients, fp32 LoRA) run on TF32 tensor cores: 10-bit-mantissa products with fp32
// accumulation, finer than the bf16 autocast of the paper's reference code and several times
// faster than IEEE fp32 GEMMs (the φ weight gradient alone took 10 ms of a 122 ms stage-1 step
// on the H100). CPU runs are unaffected.
void use_tf32_on_cuda(const c10::Device& device);

}  // namespace lawcat::model
