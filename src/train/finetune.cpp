#include "train/finetune.h"

#include "model/device.h"
#include "model/swap.h"
#include "util/error.h"

namespace lawcat::train {

at::Tensor next_token_loss(model::LlamaForCausalLMImpl& model, const at::Tensor& batch) {
  const int64_t T = batch.size(1) - 1;
  const at::Tensor b = batch.to(model.device());
  at::Tensor logits = model.forward(b.narrow(1, 0, T));  // [B, T, V]
  return at::cross_entropy_loss(logits.reshape({-1, logits.size(-1)}).to(at::kFloat),
                                b.narrow(1, 1, T).reshape({-1}));
}

model::LoraOptions lora_options_from_config(const config::StageConfig& cfg) {
  model::LoraOptions o;
  o.rank = cfg.lora_rank;
  o.alpha = cfg.lora_alpha;
  o.dropout = cfg.lora_dropout;
  o.targets = cfg.lora_targets;
  o.layers = cfg.lora_layers;
  return o;
}

StageSpec make_lora_stage(model::LlamaForCausalLMImpl& model, const config::StageConfig& cfg,
                          std::shared_ptr<model::LoraAdapters>& lora) {
  model::set_mixer_mode(model, model::MixerMode::kStudent);
  for (auto& p : model.parameters()) p.set_requires_grad(false);
  lora = model::apply_lora(model, lora_options_from_config(cfg));
  StageSpec s;
  s.name = "lora";
  s.loss_label = "cross-entropy (nats/token)";
  s.cfg = cfg;
  s.params = lora->parameters();
  if (cfg.train_lawcat)
    for (auto& [n, p] : model::lawcat_parameters(model)) s.params.emplace_back(n, p);
  for (auto& [n, p] : s.params) p.set_requires_grad(true);
  model::LoraAdapters* adapters = lora.get();
  s.before_forward = [adapters] { adapters->refresh(); };
  s.loss = [&model](const at::Tensor& batch) { return next_token_loss(model, batch); };
  return s;
}

StageSpec make_pretrain_stage(model::LlamaForCausalLMImpl& model, const config::StageConfig& cfg) {
  LAWCAT_CHECK(model.dtype() == at::kFloat, ConfigError,
               "pretrain: full training needs fp32 weights (the model is " << model::dtype_name(model.dtype()) << ")");
  StageSpec s;
  s.name = "pretrain";
  s.loss_label = "cross-entropy (nats/token)";
  s.cfg = cfg;
  for (auto& p : model.named_parameters(true)) {
    p.value().set_requires_grad(true);
    s.params.emplace_back(p.key(), p.value());
  }
  s.loss = [&model](const at::Tensor& batch) { return next_token_loss(model, batch); };
  return s;
}

void init_from_scratch(model::LlamaForCausalLMImpl& model, double std) {
  at::NoGradGuard no_grad;
  for (auto& p : model.named_parameters(true)) {
    const std::string& n = p.key();
    if (n.find("norm.weight") != std::string::npos) p.value().fill_(1.0);
    else if (p.value().dim() >= 2) p.value().normal_(0.0, std);
  }
}

}  // namespace lawcat::train
