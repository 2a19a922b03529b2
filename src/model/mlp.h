// SwiGLU feed-forward of Llama: down_proj(silu(gate_proj(x)) * up_proj(x)), no biases.
#pragma once
#include <ATen/ATen.h>
#include <torch/arg.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

namespace lawcat::model {

struct LlamaMLPOptions {
  LlamaMLPOptions(int64_t hidden_size, int64_t intermediate_size)
      : hidden_size_(hidden_size), intermediate_size_(intermediate_size) {}
  TORCH_ARG(int64_t, hidden_size);
  TORCH_ARG(int64_t, intermediate_size);
};

class LlamaMLPImpl : public torch::nn::Cloneable<LlamaMLPImpl> {
 public:
  explicit LlamaMLPImpl(const LlamaMLPOptions& options);
  void reset() override;
  // x [B, T, hidden] -> [B, T, hidden]
  at::Tensor forward(const at::Tensor& x);

  LlamaMLPOptions options;
  torch::nn::Linear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};
};
TORCH_MODULE(LlamaMLP);

}  // namespace lawcat::model
