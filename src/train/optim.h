// Optimizer pieces the recipes share: AdamW over a named parameter group, its
// state as named tensors (for safetensors checkpoints), and
// ReduceLROnPlateau (LibTorch has none; this is PyTorch's, mode "min",
// relative threshold 1e-4, no cooldown).
#pragma once
#include <ATen/ATen.h>
#include <torch/optim/adamw.h>

#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

namespace lawcat::train {

using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;

// PyTorch's ReduceLROnPlateau(mode="min", threshold=1e-4, threshold_mode="rel").
class ReduceLROnPlateau {
 public:
  ReduceLROnPlateau(double lr, double factor, int64_t patience, double min_lr, double threshold = 1e-4);
  // Feeds one validation loss; returns true when the learning rate was reduced.
  bool step(double metric);
  double lr() const { return lr_; }
  double best() const { return best_; }
  int64_t num_bad() const { return num_bad_; }
  nlohmann::json state() const;
  void load_state(const nlohmann::json& j);

 private:
  double lr_, factor_, min_lr_, threshold_;
  int64_t patience_;
  double best_;
  int64_t num_bad_ = 0;
};

std::unique_ptr<torch::optim::AdamW> make_adamw(const NamedTensors& params, double lr, double weight_decay);
void set_lr(torch::optim::Optimizer& opt, double lr);

// AdamW state as named tensors "<param>.exp_avg", "<param>.exp_avg_sq" (CPU, the
// state's dtype) plus each parameter's step count. Parameters without state
// (before the first step) are skipped.
NamedTensors adamw_state_tensors(torch::optim::AdamW& opt, const NamedTensors& params,
                                 std::map<std::string, int64_t>& steps);
// Restores it; CheckpointError naming `where` and the tensor on a missing tensor
// or a shape mismatch.
void load_adamw_state(torch::optim::AdamW& opt, const NamedTensors& params,
                      const std::map<std::string, at::Tensor>& tensors, const std::map<std::string, int64_t>& steps,
                      const std::string& where);

// Global L2 norm of the gradients (0 for none), in fp64.
double grad_norm(const NamedTensors& params);

}  // namespace lawcat::train
