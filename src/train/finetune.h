// Stage 2 (LoRA) and full training: next-token cross-entropy.
//
// LoRA (rank 8, alpha 16 on q/k/v/o by default) adapts the projections that
// the LAWCAT mixers share with the teacher; the LAWCAT parameters stay frozen
// unless lora.train_lawcat. Full training ("pretrain") trains every parameter
// in fp32: a small softmax teacher from scratch, or a fine-tune of one.
#pragma once
#include <ATen/ATen.h>

#include <memory>

#include "config/schema.h"
#include "model/llama.h"
#include "model/lora.h"
#include "train/loop.h"

namespace lawcat::train {

// batch [B, T+1] int64 -> mean cross-entropy (fp32) of tokens 1..T given 0..T-1.
at::Tensor next_token_loss(model::LlamaForCausalLMImpl& model, const at::Tensor& batch);

model::LoraOptions lora_options_from_config(const config::StageConfig& cfg);

// Student mode, LoRA adapters attached (`lora` receives them), the stage ("lora").
StageSpec make_lora_stage(model::LlamaForCausalLMImpl& model, const config::StageConfig& cfg,
                          std::shared_ptr<model::LoraAdapters>& lora);

// Every parameter trainable (the model must be fp32), the stage ("pretrain").
StageSpec make_pretrain_stage(model::LlamaForCausalLMImpl& model, const config::StageConfig& cfg);

// N(0, std) for every matrix and the embedding, ones for the norms (as HF's
// Llama init), for a model trained from scratch.
void init_from_scratch(model::LlamaForCausalLMImpl& model, double std);

}  // namespace lawcat::train
