// Stage 1, attention transfer (LAWCAT paper, arXiv 2509.18467; docs/training.md):
// every LAWCAT layer computes the teacher's softmax attention and its own
// output from the same hidden states and passes the teacher's on
// (MixerMode::kDistill), so layers are distilled independently. The loss is
// the mean over layers of MSE(student, teacher) on the pre-W_o outputs
// [B, T, H*d], times loss_scale (1000). Only the LAWCAT parameters train.
#pragma once
#include <ATen/ATen.h>

#include "config/schema.h"
#include "model/llama.h"
#include "train/loop.h"

namespace lawcat::train {

// batch [B, T+1] int64 (the first T tokens are used) -> scalar fp32 loss.
// The model must be swapped and in MixerMode::kDistill.
at::Tensor attention_transfer_loss(model::LlamaForCausalLMImpl& model, const at::Tensor& batch, double loss_scale);

// Puts the model in distill mode, freezes everything but the LAWCAT
// parameters and returns the stage ("distill").
StageSpec make_distill_stage(model::LlamaForCausalLMImpl& model, const config::StageConfig& cfg);

}  // namespace lawcat::train
