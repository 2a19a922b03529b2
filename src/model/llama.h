// The Llama-family decoder (Llama 2/3, TinyLlama, Mistral, SmolLM / SmolLM2, Qwen2,
// Qwen3, llama2.c checkpoints after conversion), module for module as Hugging Face's
// LlamaForCausalLM (Qwen2/Qwen3ForCausalLM: the same layout) so that named_parameters()
// equals the safetensors names:
//
//   model.embed_tokens.weight                           [V, D]
//   model.layers.N.input_layernorm.weight               [D]
//   model.layers.N.self_attn.{q,k,v,o}_proj.weight      (a TokenMixer; swappable)
//   model.layers.N.self_attn.{q,k,v}_proj.bias          Qwen2 (attention_bias: + o_proj.bias)
//   model.layers.N.self_attn.{q,k}_norm.weight          [head_dim], Qwen3
//   model.layers.N.post_attention_layernorm.weight      [D]
//   model.layers.N.mlp.{gate,up,down}_proj.weight
//   model.norm.weight                                   [D]
//   lm_head.weight                                      [V, D] (absent when tied)
//
// Layer: h = x + self_attn(input_layernorm(x)); out = h + mlp(post_attention_layernorm(h)).
#pragma once
#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "io/hf_config.h"
#include "model/attention.h"
#include "model/decode_state.h"
#include "model/mlp.h"
#include "model/rmsnorm.h"
#include "model/rope.h"
#include "model/token_mixer.h"

namespace lawcat::model {

class LlamaDecoderLayerImpl : public torch::nn::Module {
 public:
  LlamaDecoderLayerImpl(const io::LlamaConfig& config, int64_t layer_index);
  // x [B, T, D] -> [B, T, D]
  at::Tensor forward(const at::Tensor& x, const MixerContext& ctx);
  // Replaces the token mixer (keeps the registered name "self_attn").
  void set_mixer(std::shared_ptr<TokenMixer> mixer);
  // The softmax attention teacher, or nullptr when the mixer has been replaced.
  LlamaAttention softmax_attention() const;
  int64_t layer_index() const { return layer_index_; }

  std::shared_ptr<TokenMixer> self_attn;
  LlamaMLP mlp{nullptr};
  RMSNorm input_layernorm{nullptr}, post_attention_layernorm{nullptr};

 private:
  int64_t layer_index_;
};
TORCH_MODULE(LlamaDecoderLayer);

// The decoder stack ("model." prefix in HF names).
class LlamaModelImpl : public torch::nn::Module {
 public:
  explicit LlamaModelImpl(const io::LlamaConfig& config);
  torch::nn::Embedding embed_tokens{nullptr};
  torch::nn::ModuleList layers{nullptr};
  std::vector<LlamaDecoderLayer> decoder_layers;  // typed views of `layers`
  RMSNorm norm{nullptr};
};
TORCH_MODULE(LlamaModel);

class LlamaForCausalLMImpl : public torch::nn::Module {
 public:
  explicit LlamaForCausalLMImpl(const io::LlamaConfig& config);

  // input_ids [B, T] (int64) -> logits [B, T, V], positions 0..T-1, no state.
  at::Tensor forward(const at::Tensor& input_ids);
  // Continues `state`: positions state.position.., updates every layer's state
  // and advances state.position by T. Used for prefill (T > 1) and steps (T == 1).
  // attention_mask: left padding, as hidden_states.
  at::Tensor forward(const at::Tensor& input_ids, DecodeState& state, const at::Tensor& attention_mask = {});
  // input_ids [B, T] -> final-normed hidden states [B, T, D]; state optional.
  // attention_mask [B, T] (1 / true = a real token; undefined = all real) takes a batch of
  // ragged sequences LEFT-padded (pads first in each row, at least one real token per row):
  // each row's positions start at 0 at its first real token, pads are masked out of softmax
  // attention and leave LAWCAT states untouched, so a row's real tokens get what they get
  // alone. With a state, only its first call (the prefill) may carry pads; the state keeps
  // the per-row offsets (DecodeState::pads) and the masks for the calls that follow. Hidden
  // states at pad positions are zeros.
  at::Tensor hidden_states(const at::Tensor& input_ids, DecodeState* state = nullptr,
                           const at::Tensor& attention_mask = {});
  // hidden [..., D] -> logits [..., V] (lm_head, or the embedding when tied).
  at::Tensor logits(const at::Tensor& hidden);
  // token ids [B, T] -> embeddings [B, T, D].
  at::Tensor embed(const at::Tensor& input_ids);
  // RoPE tables for positions offset..offset+T-1, [T, head_dim] in the model dtype.
  std::pair<at::Tensor, at::Tensor> rope_cos_sin(int64_t offset, int64_t T);
  // A MixerContext for T tokens starting at `offset` (state left null).
  MixerContext mixer_context(int64_t offset, int64_t T);

  // An empty decode state: one LayerState per layer from each layer's mixer.
  DecodeState new_decode_state(int64_t batch = 1) const;

  const io::LlamaConfig& config() const { return config_; }
  io::LlamaConfig& mutable_config() { return config_; }
  int64_t num_layers() const { return static_cast<int64_t>(model->decoder_layers.size()); }
  LlamaDecoderLayer& layer(int64_t i) { return model->decoder_layers.at(i); }
  int64_t hidden_size() const { return config_.hidden_size; }
  int64_t vocab_size() const { return config_.vocab_size; }
  int64_t max_positions() const { return config_.max_position_embeddings; }
  bool tied() const { return config_.tie_word_embeddings; }
  at::Device device() const;
  at::ScalarType dtype() const;
  const RotaryEmbedding& rope() const { return rope_; }

  LlamaModel model{nullptr};
  torch::nn::Linear lm_head{nullptr};  // null when tie_word_embeddings

 private:
  io::LlamaConfig config_;
  RotaryEmbedding rope_;
  // RoPE tables for positions 0..N-1 on the model's device and dtype, built once
  // and grown by doubling (no host-to-device copy, hence no sync, per forward).
  at::Tensor rope_cos_, rope_sin_;  // [N, head_dim]
};
TORCH_MODULE(LlamaForCausalLM);

// ---- construction -------------------------------------------------------------

// Loading and saving a model directory: model/checkpoint.h; device and dtype names:
// model/device.h.

// Checks a config for what this model supports (head_dim, GQA ratio, rope type).
// Throws CheckpointError naming `where`.
void validate_llama_config(const io::LlamaConfig& config, const std::string& where);

// Builds an (randomly initialized) model from a config. Parameters are on the CPU in fp32.
LlamaForCausalLM build_llama(const io::LlamaConfig& config);

}  // namespace lawcat::model
