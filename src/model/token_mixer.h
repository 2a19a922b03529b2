// TokenMixer: the replaceable part of a decoder layer (the "self_attn" slot).
//
// The teacher's softmax attention (model/attention.h) is one; LAWCAT linear
// attention is another. A decoder layer holds a std::shared_ptr<TokenMixer>
// registered under the name "self_attn", so swapping one for another with
// LlamaDecoderLayerImpl::set_mixer keeps parameter names HF-like
// (model.layers.N.self_attn.q_proj.weight, ...).
#pragma once
#include <ATen/ATen.h>
#include <torch/nn/module.h>

#include <cstdint>
#include <memory>
#include <string>

#include "model/decode_state.h"

namespace lawcat::model {

// What a mixer gets besides the hidden states.
struct MixerContext {
  int64_t position_offset = 0;  // position of the first of the T tokens
  at::Tensor cos, sin;          // RoPE tables for those positions [T, D] (HF half-split), model dtype;
                                // [B, T, D] with per-row positions (left-padded batches)
  LayerState* state = nullptr;  // this layer's decode state; nullptr = no caching (plain forward)
  // Left padding (a batch of ragged prompts): [B, T] bool, true = a real token, pads first in
  // each row. Undefined = every token is real. Mixers must leave real tokens' outputs and their
  // state as if the pads were not there (softmax: pad keys masked; LAWCAT: pads neither decay
  // nor accumulate, the conv sees zeros before a row's first real token).
  at::Tensor valid;
};

class TokenMixer : public torch::nn::Module {
 public:
  using torch::nn::Module::Module;
  // hidden [B, T, hidden_size] -> [B, T, hidden_size]. When ctx.state is set, the
  // tokens continue the sequence the state has seen (prefill or one-token steps).
  virtual at::Tensor forward(const at::Tensor& hidden, const MixerContext& ctx) = 0;
  // A fresh, empty decode state for a batch of `batch` sequences.
  virtual std::unique_ptr<LayerState> make_state(int64_t batch) const = 0;
  // "softmax", "lawcat", ... (for logs and checks).
  virtual std::string kind() const = 0;
};

}  // namespace lawcat::model
