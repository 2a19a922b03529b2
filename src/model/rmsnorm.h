// RMSNorm as Hugging Face Llama computes it: statistics in fp32, the
// normalized activations cast back to the input dtype, then scaled by the
// weight (y = w * (x / sqrt(mean(x^2) + eps)).to(dtype)).
#pragma once
#include <ATen/ATen.h>
#include <torch/arg.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/pimpl.h>

namespace lawcat::model {

struct RMSNormOptions {
  explicit RMSNormOptions(int64_t dim) : dim_(dim) {}
  TORCH_ARG(int64_t, dim);
  TORCH_ARG(double, eps) = 1e-5;
};

class RMSNormImpl : public torch::nn::Cloneable<RMSNormImpl> {
 public:
  explicit RMSNormImpl(const RMSNormOptions& options);
  void reset() override;
  // x [..., dim] -> [..., dim], same dtype as x.
  at::Tensor forward(const at::Tensor& x);

  RMSNormOptions options;
  at::Tensor weight;  // [dim], initialised to ones
};
TORCH_MODULE(RMSNorm);

}  // namespace lawcat::model
