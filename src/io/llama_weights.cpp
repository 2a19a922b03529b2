#include "io/llama_weights.h"

#include <algorithm>
#include <sstream>

#include "util/error.h"
#include "util/format.h"

namespace lawcat::io {
namespace {

// Number of layers the weights hold: 1 + the largest N in "model.layers.N.*" (0 when none).
int64_t stored_layers(const WeightSet& weights) {
  const std::string prefix = "model.layers.";
  int64_t n = 0;
  for (const auto& name : weights.names()) {
    if (name.compare(0, prefix.size(), prefix) != 0) continue;
    const size_t dot = name.find('.', prefix.size());
    const std::string index = name.substr(prefix.size(), dot - prefix.size());
    if (index.empty() || index.size() > 9 || !std::all_of(index.begin(), index.end(), ::isdigit)) continue;
    n = std::max<int64_t>(n, std::stoll(index) + 1);
  }
  return n;
}

}  // namespace

std::vector<ExpectedTensor> llama_global_tensors(const LlamaConfig& c) {
  std::vector<ExpectedTensor> out = {
      {"model.embed_tokens.weight", {c.vocab_size, c.hidden_size}, "vocab_size, hidden_size"},
      {"model.norm.weight", {c.hidden_size}, "hidden_size"}};
  if (!c.tie_word_embeddings)
    out.push_back({"lm_head.weight", {c.vocab_size, c.hidden_size}, "vocab_size, hidden_size"});
  return out;
}

std::vector<ExpectedTensor> llama_layer_tensors(const LlamaConfig& c, int64_t layer) {
  const std::string p = "model.layers." + std::to_string(layer) + ".";
  const int64_t H = c.hidden_size, I = c.intermediate_size;
  const int64_t q = c.num_attention_heads * c.head_dim, kv = c.num_key_value_heads * c.head_dim;
  std::vector<ExpectedTensor> out = {
      {p + "self_attn.q_proj.weight", {q, H}, "num_attention_heads x head_dim, hidden_size"},
      {p + "self_attn.k_proj.weight", {kv, H}, "num_key_value_heads x head_dim, hidden_size"},
      {p + "self_attn.v_proj.weight", {kv, H}, "num_key_value_heads x head_dim, hidden_size"},
      {p + "self_attn.o_proj.weight", {H, q}, "hidden_size, num_attention_heads x head_dim"},
      {p + "mlp.gate_proj.weight", {I, H}, "intermediate_size, hidden_size"},
      {p + "mlp.up_proj.weight", {I, H}, "intermediate_size, hidden_size"},
      {p + "mlp.down_proj.weight", {H, I}, "hidden_size, intermediate_size"},
      {p + "input_layernorm.weight", {H}, "hidden_size"},
      {p + "post_attention_layernorm.weight", {H}, "hidden_size"},
  };
  const char* bias_keys = c.is_qwen2() ? "Qwen2 (always), num_attention_heads x head_dim"
                                       : "attention_bias, num_attention_heads x head_dim";
  const char* kv_bias_keys = c.is_qwen2() ? "Qwen2 (always), num_key_value_heads x head_dim"
                                          : "attention_bias, num_key_value_heads x head_dim";
  if (c.qkv_bias()) {
    out.push_back({p + "self_attn.q_proj.bias", {q}, bias_keys});
    out.push_back({p + "self_attn.k_proj.bias", {kv}, kv_bias_keys});
    out.push_back({p + "self_attn.v_proj.bias", {kv}, kv_bias_keys});
  }
  if (c.o_bias()) out.push_back({p + "self_attn.o_proj.bias", {H}, "attention_bias, hidden_size"});
  if (c.qk_norm()) {
    out.push_back({p + "self_attn.q_norm.weight", {c.head_dim}, "Qwen3 q_norm, head_dim"});
    out.push_back({p + "self_attn.k_norm.weight", {c.head_dim}, "Qwen3 k_norm, head_dim"});
  }
  return out;
}

void check_llama_weights(const LlamaConfig& c, const WeightSet& weights, const std::filesystem::path& config_json) {
  constexpr size_t kShown = 20;
  std::vector<std::string> problems;
  size_t more = 0;
  auto problem = [&](std::string p) {
    if (problems.size() < kShown) problems.push_back(std::move(p));
    else ++more;
  };
  auto check = [&](const ExpectedTensor& e) {
    if (!weights.contains(e.name)) {
      problem("missing tensor " + e.name + " (expected shape " + format::shape(e.shape) + " from " + e.because + ")");
      return;
    }
    const auto& stored = weights.info(e.name).shape;
    if (stored != e.shape)
      problem("tensor " + e.name + " in " + weights.file(e.name).path().string() + ": expected shape " +
              format::shape(e.shape) + ", got " + format::shape(stored) + " (from " + e.because + ")");
  };
  for (const auto& e : llama_global_tensors(c)) check(e);
  const int64_t stored = stored_layers(weights);
  if (c.num_hidden_layers > stored) {
    problem("num_hidden_layers " + std::to_string(c.num_hidden_layers) + ", but the weights hold " +
            (stored ? "layers 0.." + std::to_string(stored - 1) : std::string("no layers")) + " (no model.layers." +
            std::to_string(stored) + ".*)");
  }
  // Layers the weights hold (at most num_hidden_layers): every one, or up to kShown problems.
  for (int64_t l = 0; l < std::min(c.num_hidden_layers, stored) && problems.size() < kShown; ++l)
    for (const auto& e : llama_layer_tensors(c, l)) check(e);
  if (problems.empty()) return;
  std::string msg = config_json.string() + " does not fit the weights in " + weights.dir().string() + " (" +
                    std::to_string(problems.size() + more) + (more ? "+" : "") + " problem" +
                    (problems.size() + more > 1 ? "s" : "") + "):";
  for (const auto& p : problems) msg += "\n  " + p;
  if (more) msg += "\n  ... and more";
  throw CheckpointError(msg);
}

}  // namespace lawcat::io
