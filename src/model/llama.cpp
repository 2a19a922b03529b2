#include "model/llama.h"

#include <string>
#include <vector>

#include "util/error.h"

namespace lawcat::model {

// ---- modules -------------------------------------------------------------------

LlamaDecoderLayerImpl::LlamaDecoderLayerImpl(const io::LlamaConfig& c, int64_t layer_index)
    : layer_index_(layer_index) {
  // Registration order follows HF's LlamaDecoderLayer.
  self_attn = register_module(
      "self_attn", std::make_shared<LlamaAttentionImpl>(
                       LlamaAttentionOptions(c.hidden_size, c.num_attention_heads, c.num_key_value_heads, c.head_dim)
                           .bias(c.qkv_bias())
                           .o_bias(c.o_bias())
                           .qk_norm(c.qk_norm())
                           .norm_eps(c.rms_norm_eps)
                           .window(c.attention_window(layer_index))));
  mlp = register_module("mlp", LlamaMLP(LlamaMLPOptions(c.hidden_size, c.intermediate_size)));
  input_layernorm =
      register_module("input_layernorm", RMSNorm(RMSNormOptions(c.hidden_size).eps(c.rms_norm_eps)));
  post_attention_layernorm = register_module(
      "post_attention_layernorm", RMSNorm(RMSNormOptions(c.hidden_size).eps(c.rms_norm_eps)));
}

at::Tensor LlamaDecoderLayerImpl::forward(const at::Tensor& x, const MixerContext& ctx) {
  at::Tensor h = x + self_attn->forward(input_layernorm(x), ctx);
  return h + mlp(post_attention_layernorm(h));
}

void LlamaDecoderLayerImpl::set_mixer(std::shared_ptr<TokenMixer> mixer) {
  TORCH_CHECK(mixer, "set_mixer: null mixer for layer ", layer_index_);
  self_attn = replace_module("self_attn", std::move(mixer));
}

LlamaAttention LlamaDecoderLayerImpl::softmax_attention() const {
  return std::dynamic_pointer_cast<LlamaAttentionImpl>(self_attn);
}

LlamaModelImpl::LlamaModelImpl(const io::LlamaConfig& c) {
  embed_tokens = register_module(
      "embed_tokens", torch::nn::Embedding(torch::nn::EmbeddingOptions(c.vocab_size, c.hidden_size)));
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    LlamaDecoderLayer layer(c, i);
    layers->push_back(layer);
    decoder_layers.push_back(layer);
  }
  norm = register_module("norm", RMSNorm(RMSNormOptions(c.hidden_size).eps(c.rms_norm_eps)));
}

LlamaForCausalLMImpl::LlamaForCausalLMImpl(const io::LlamaConfig& c)
    : config_(c), rope_(RopeOptions{c.head_dim, c.rope_theta, c.rope_scaling}) {
  validate_llama_config(c, "LlamaForCausalLM");
  model = register_module("model", LlamaModel(c));
  if (!c.tie_word_embeddings) {
    lm_head = register_module(
        "lm_head", torch::nn::Linear(torch::nn::LinearOptions(c.hidden_size, c.vocab_size).bias(false)));
  }
}

at::Device LlamaForCausalLMImpl::device() const { return model->embed_tokens->weight.device(); }
at::ScalarType LlamaForCausalLMImpl::dtype() const {
  return model->embed_tokens->weight.scalar_type();
}

at::Tensor LlamaForCausalLMImpl::embed(const at::Tensor& input_ids) {
  TORCH_CHECK(input_ids.dim() == 2 && input_ids.scalar_type() == at::kLong,
              "LlamaForCausalLM: input_ids must be int64 [B, T], got ", input_ids.scalar_type(), " ",
              input_ids.sizes());
  if (input_ids.numel() > 0 && input_ids.is_cpu()) {  // (on a GPU this would cost a sync per call)
    const int64_t lo = input_ids.min().item<int64_t>(), hi = input_ids.max().item<int64_t>();
    TORCH_CHECK(lo >= 0 && hi < config_.vocab_size, "LlamaForCausalLM: token ids must be in [0, ",
                config_.vocab_size, "), got [", lo, ", ", hi, "]");
  }
  return model->embed_tokens(input_ids.to(device()));
}

std::pair<at::Tensor, at::Tensor> LlamaForCausalLMImpl::rope_cos_sin(int64_t offset, int64_t T) {
  // Views of cached tables: the values are those of rope_.cos_sin(offset, T, ...)
  // (each row is computed from its own position alone), without rebuilding them
  // and copying inv_freq to the device on every call (one sync per decode step).
  const at::Device dev = device();
  const at::ScalarType dt = dtype();
  const int64_t need = offset + T;
  if (!rope_cos_.defined() || rope_cos_.device() != dev || rope_cos_.scalar_type() != dt ||
      rope_cos_.size(0) < need) {
    int64_t n = std::max<int64_t>(4096, rope_cos_.defined() ? rope_cos_.size(0) : 0);
    while (n < need) n *= 2;
    at::NoGradGuard no_grad;
    std::tie(rope_cos_, rope_sin_) = rope_.cos_sin(0, n, dev, dt);
  }
  return {rope_cos_.narrow(0, offset, T), rope_sin_.narrow(0, offset, T)};
}

MixerContext LlamaForCausalLMImpl::mixer_context(int64_t offset, int64_t T) {
  MixerContext ctx;
  ctx.position_offset = offset;
  std::tie(ctx.cos, ctx.sin) = rope_cos_sin(offset, T);
  return ctx;
}

at::Tensor LlamaForCausalLMImpl::hidden_states(const at::Tensor& input_ids, DecodeState* state,
                                               const at::Tensor& attention_mask) {
  const int64_t T = input_ids.size(-1);
  const int64_t offset = state ? state->position : 0;
  if (state) {
    TORCH_CHECK(static_cast<int64_t>(state->layers.size()) == num_layers(),
                "LlamaForCausalLM: decode state has ", state->layers.size(), " layers, model has ",
                num_layers(), " (make it with new_decode_state)");
    TORCH_CHECK(input_ids.size(0) == state->batch, "LlamaForCausalLM: decode state is for batch ",
                state->batch, ", input_ids has batch ", input_ids.size(0));
  }
  const int64_t B = input_ids.size(0);
  // Left padding: the mask (normalized to undefined when it pads nothing) and the pads per row.
  at::Tensor valid, pads = state ? state->pads : at::Tensor();
  if (attention_mask.defined()) {
    TORCH_CHECK(attention_mask.dim() == 2 && attention_mask.size(0) == B && attention_mask.size(1) == T,
                "LlamaForCausalLM: attention_mask must be [B, T] = [", B, ", ", T, "], got ", attention_mask.sizes());
    const at::Tensor m = attention_mask.to(device(), at::kBool);
    const at::Tensor row_pads = m.logical_not().sum(1);  // [B] int64
    const auto lopts = at::TensorOptions().dtype(at::kLong).device(device());
    const bool left = at::equal(m, at::arange(T, lopts).unsqueeze(0) >= row_pads.unsqueeze(1));
    TORCH_CHECK(left && (T == 0 || row_pads.max().item<int64_t>() < T),
                "LlamaForCausalLM: attention_mask must be left padding (pads first) with a real token in every row");
    if (row_pads.any().item<bool>()) {
      TORCH_CHECK(!state || (state->position == 0 && !state->pads.defined()),
                  "LlamaForCausalLM: padding is only taken by the first call on a decode state (the prefill)");
      valid = m;
      pads = row_pads;
      if (state) state->pads = row_pads;
    }
  }
  at::Tensor x = embed(input_ids);  // [B, T, D]
  MixerContext ctx = mixer_context(offset, T);
  if (state && state->device_position.defined()) {
    // A step that may be captured in a CUDA graph: RoPE's row comes from the device position
    // (the host offset would be frozen into the graph). The tables were grown before the capture.
    TORCH_CHECK(T == 1 && !pads.defined(), "LlamaForCausalLM: a state with a device position takes one unpadded "
                                           "token per call, got ", T);
    TORCH_CHECK(rope_cos_.defined() && rope_cos_.size(0) > offset, "LlamaForCausalLM: RoPE tables end before ",
                offset);
    ctx.cos = rope_cos_.index_select(0, state->device_position);  // [1, head_dim]
    ctx.sin = rope_sin_.index_select(0, state->device_position);
  }
  if (pads.defined()) {
    // Per-row positions: index t of row b is position offset + t - pads[b] (pads: 0).
    const auto lopts = at::TensorOptions().dtype(at::kLong).device(device());
    const at::Tensor pos = (at::arange(offset, offset + T, lopts).unsqueeze(0) - pads.unsqueeze(1)).clamp_min(0);
    rope_cos_sin(0, offset + T);  // grows the tables
    const int64_t hd = rope_cos_.size(1);
    ctx.cos = rope_cos_.index_select(0, pos.reshape({-1})).view({B, T, hd});
    ctx.sin = rope_sin_.index_select(0, pos.reshape({-1})).view({B, T, hd});
    ctx.valid = valid;
  }
  const at::Tensor pad_rows = valid.defined() ? valid.logical_not().unsqueeze(-1) : at::Tensor();  // [B, T, 1]
  if (pad_rows.defined()) x = x.masked_fill(pad_rows, 0);
  for (int64_t i = 0; i < num_layers(); ++i) {
    ctx.state = state ? state->layers[i].get() : nullptr;
    x = layer(i)->forward(x, ctx);
    if (pad_rows.defined()) x = x.masked_fill(pad_rows, 0);  // pads stay zeros (finite) layer after layer
  }
  if (state) state->position += T;
  if (state && state->device_position.defined()) state->device_position.add_(T);
  return model->norm(x);
}

at::Tensor LlamaForCausalLMImpl::logits(const at::Tensor& hidden) {
  if (lm_head) return lm_head(hidden);
  return at::linear(hidden, model->embed_tokens->weight);
}

at::Tensor LlamaForCausalLMImpl::forward(const at::Tensor& input_ids) {
  return logits(hidden_states(input_ids, nullptr));
}

at::Tensor LlamaForCausalLMImpl::forward(const at::Tensor& input_ids, DecodeState& state,
                                         const at::Tensor& attention_mask) {
  return logits(hidden_states(input_ids, &state, attention_mask));
}

DecodeState LlamaForCausalLMImpl::new_decode_state(int64_t batch) const {
  DecodeState s;
  s.batch = batch;
  for (const auto& l : model->decoder_layers) s.layers.push_back(l->self_attn->make_state(batch));
  return s;
}

// ---- config ----------------------------------------------------------------------

void validate_llama_config(const io::LlamaConfig& c, const std::string& where) {
  std::vector<std::string> problems;
  auto need_positive = [&](const char* key, int64_t v) {
    if (v <= 0) problems.push_back(std::string(key) + " must be positive, got " + std::to_string(v));
  };
  need_positive("vocab_size", c.vocab_size);
  need_positive("hidden_size", c.hidden_size);
  need_positive("intermediate_size", c.intermediate_size);
  need_positive("num_hidden_layers", c.num_hidden_layers);
  need_positive("num_attention_heads", c.num_attention_heads);
  need_positive("num_key_value_heads", c.num_key_value_heads);
  need_positive("head_dim", c.head_dim);
  if (c.num_attention_heads > 0 && c.num_key_value_heads > 0 &&
      c.num_attention_heads % c.num_key_value_heads != 0) {
    problems.push_back("num_attention_heads (" + std::to_string(c.num_attention_heads) +
                       ") must be a multiple of num_key_value_heads (" +
                       std::to_string(c.num_key_value_heads) + ")");
  }
  if (c.head_dim % 2 != 0) problems.push_back("head_dim must be even for RoPE, got " + std::to_string(c.head_dim));
  const auto& t = c.rope_scaling.type;
  if (t != "none" && t != "default" && t != "linear" && t != "llama3") {
    problems.push_back("rope_scaling type '" + t + "' is not supported (none, linear, llama3)");
  }
  if (!(c.rms_norm_eps > 0)) problems.push_back("rms_norm_eps must be positive");
  if (!(c.rope_theta > 0)) problems.push_back("rope_theta must be positive");
  if (!problems.empty()) {
    std::string msg = where + ": unsupported Llama config:";
    for (const auto& p : problems) msg += "\n  " + p;
    throw CheckpointError(msg);
  }
}

LlamaForCausalLM build_llama(const io::LlamaConfig& config) { return LlamaForCausalLM(config); }

}  // namespace lawcat::model
