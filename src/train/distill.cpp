#include "train/distill.h"

#include "model/swap.h"
#include "util/error.h"

namespace lawcat::train {

at::Tensor attention_transfer_loss(model::LlamaForCausalLMImpl& model, const at::Tensor& batch, double loss_scale) {
  auto layers = model::lawcat_layers(model);
  LAWCAT_CHECK(!layers.empty(), ConfigError, "distill: the model has no LAWCAT layers (attention.kind is softmax?)");
  const at::Tensor input = batch.narrow(1, 0, batch.size(1) - 1).to(model.device());  // [B, T]
  model.hidden_states(input);  // runs every layer; the mixers record student and teacher outputs
  at::Tensor total;
  for (auto& [i, m] : layers) {
    const at::Tensor& s = m->last_student();  // [B, T, H*d], graph to the LAWCAT parameters
    const at::Tensor& t = m->last_teacher();  // [B, T, H*d], no grad
    TORCH_CHECK(s.defined() && t.defined(), "distill: layer ", i, " recorded no outputs (not in distill mode?)");
    at::Tensor mse = (s.to(at::kFloat) - t.to(at::kFloat)).pow(2).mean();
    total = total.defined() ? total + mse : mse;
    m->clear_recorded();
  }
  return total * (loss_scale / static_cast<double>(layers.size()));
}

StageSpec make_distill_stage(model::LlamaForCausalLMImpl& model, const config::StageConfig& cfg) {
  model::freeze_teacher(model);
  model::set_mixer_mode(model, model::MixerMode::kDistill);
  StageSpec s;
  s.name = "distill";
  s.loss_label = "attention MSE x" + std::to_string(static_cast<int64_t>(cfg.loss_scale));
  s.cfg = cfg;
  s.params = model::lawcat_parameters(model);
  LAWCAT_CHECK(!s.params.empty(), ConfigError, "distill: the model has no LAWCAT parameters to train");
  const double scale = cfg.loss_scale;
  s.loss = [&model, scale](const at::Tensor& batch) { return attention_transfer_loss(model, batch, scale); };
  return s;
}

}  // namespace lawcat::train
