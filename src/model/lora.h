// LoRA (Hu et al. 2021) on the projections of a (LAWCAT) Llama (the recipe: q, k, v, o;
// the MLP's gate/up/down may be added through lora_targets):
//
//   W' = W + (alpha / r) · B A        A [r, in] (kaiming-uniform, as PEFT), B [out, r] (zeros)
//
// The adapters are child modules of the projections they adapt, so parameter
// names read model.layers.N.self_attn.q_proj.lora_A.weight / .lora_B.weight.
// LAWCAT mixers share q/k/v/o with the teacher module object, so one adapter
// serves both (student and teacher paths see the same adapted projection).
//
// How it reaches the forward: torch::nn::Linear::forward is not virtual, so
// the model's `proj->forward(x)` cannot be intercepted. Instead refresh()
// points each adapted Linear's `weight` member at W + s·B A (computed in fp32,
// cast to W's dtype) before a forward; the registered "weight" parameter keeps
// the frozen W. Gradients reach A and B through that expression. It costs one
// [out, in] matmul per projection per forward and an [out, in] weight gradient
// in backward; in bf16 the forward sees W' rounded to bf16, which is also what
// the merged export computes. Dropout on the LoRA input is therefore not
// supported (lora_dropout must be 0, the recipe's value).
#pragma once
#include <ATen/ATen.h>
#include <torch/nn/modules/linear.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "model/llama.h"

namespace lawcat::model {

struct LoraOptions {
  int64_t rank = 8;
  double alpha = 16.0;
  double dropout = 0.0;  // must be 0 (see above)
  std::vector<std::string> targets = {"q_proj", "k_proj", "v_proj", "o_proj"};
  std::vector<int64_t> layers;  // decoder layers whose targets get adapters; empty = every layer
  double scale() const { return alpha / static_cast<double>(rank); }
};

class LoraAdapters {
 public:
  struct Adapter {
    std::string name;               // full name of the adapted Linear, "model.layers.3.self_attn.q_proj"
    std::shared_ptr<torch::nn::LinearImpl> base;
    at::Tensor frozen;              // W [out, in], the registered parameter
    torch::nn::Linear A{nullptr};   // in -> r, fp32
    torch::nn::Linear B{nullptr};   // r -> out, fp32
  };

  LoraAdapters(std::vector<Adapter> adapters, LoraOptions options);
  ~LoraAdapters();  // restores the plain weights

  // Points every adapted Linear at W + s·B A (with a graph when grad mode is on).
  void refresh();
  // Points every adapted Linear back at its frozen W (adapters stay registered).
  void restore();
  // Removes the adapters from the model (restore + unregister lora_A / lora_B).
  void detach();

  // Trainable tensors, by full name ("<linear>.lora_A.weight", "<linear>.lora_B.weight").
  std::vector<std::pair<std::string, at::Tensor>> parameters() const;
  // "<linear>.weight" -> W + s·B A (fp32 arithmetic, returned in `dtype`), no grad.
  std::vector<std::pair<std::string, at::Tensor>> merged_weights(at::ScalarType dtype) const;
  const std::vector<Adapter>& adapters() const { return adapters_; }
  const LoraOptions& options() const { return options_; }

 private:
  std::vector<Adapter> adapters_;
  LoraOptions options_;
  bool attached_ = true;
};

// Adds adapters to every Linear of the decoder layers named ".self_attn.<target>" or
// ".mlp.<target>" (q_proj, k_proj, v_proj, o_proj; gate_proj, up_proj, down_proj).
// ConfigError when a target matches nothing (naming it and what exists) or the
// options are out of range.
std::shared_ptr<LoraAdapters> apply_lora(LlamaForCausalLMImpl& model, const LoraOptions& options);
// The same checks without adding anything: the recipe asks before stage 1, so a bad lora.* key is
// reported before the distillation runs, not after it.
void check_lora_options(LlamaForCausalLMImpl& model, const LoraOptions& options);

// True for names of LoRA parameters.
bool is_lora_parameter_name(const std::string& name);

}  // namespace lawcat::model
