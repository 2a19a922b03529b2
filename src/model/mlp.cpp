#include "model/mlp.h"

namespace lawcat::model {

LlamaMLPImpl::LlamaMLPImpl(const LlamaMLPOptions& options_) : options(options_) { reset(); }

void LlamaMLPImpl::reset() {
  using torch::nn::LinearOptions;
  const int64_t D = options.hidden_size(), I = options.intermediate_size();
  gate_proj = register_module("gate_proj", torch::nn::Linear(LinearOptions(D, I).bias(false)));
  up_proj = register_module("up_proj", torch::nn::Linear(LinearOptions(D, I).bias(false)));
  down_proj = register_module("down_proj", torch::nn::Linear(LinearOptions(I, D).bias(false)));
}

at::Tensor LlamaMLPImpl::forward(const at::Tensor& x) {
  return down_proj(at::silu(gate_proj(x)) * up_proj(x));
}

}  // namespace lawcat::model
