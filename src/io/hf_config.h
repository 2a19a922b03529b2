// Hugging Face config.json for Llama-family decoders (LlamaForCausalLM,
// MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM; SmolLM2 is a Llama).
// Missing required fields and unsupported values are CheckpointErrors naming the
// file and the key.
//
// Required: hidden_size, intermediate_size, num_hidden_layers,
// num_attention_heads, vocab_size, and the architecture ("architectures"[0], or
// "model_type" llama / mistral when "architectures" is absent). Everything else
// takes the transformers default when absent. rope_theta / rope_scaling may also
// come as transformers v5's "rope_parameters"; "dtype" is read as "torch_dtype".
// Mistral: sliding_window (MistralConfig's default 4096 when absent; null = full attention)
// windows every layer, as MistralForCausalLM does.
// Rejected because lawcat's Llama does not implement them: mlp_bias true,
// attention_bias true for Mistral, hidden_act other than "silu", rope types other
// than default / linear / llama3.
//
// The Qwen families differ from Llama only in the attention (transformers 5's
// Qwen2Attention / Qwen3Attention):
//   Qwen2: biases on q/k/v (always; none on o); sliding-window attention on the layers
//          layer_types names "sliding_attention" (when layer_types is absent: layers
//          >= max_window_layers when use_sliding_window), window sliding_window.
//   Qwen3: a per-head RMSNorm (q_norm, k_norm, weight [head_dim], rms_norm_eps) on q
//          and k before RoPE; head_dim 128 when absent; attention_bias (default false)
//          on all four projections; the sliding window as Qwen2.
#pragma once
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace lawcat::io {

struct RopeScaling {
  std::string type = "none";          // "none" (also "default"), "linear", "llama3"
  double factor = 1.0;
  double low_freq_factor = 1.0;       // llama3
  double high_freq_factor = 4.0;      // llama3
  int64_t original_max_position_embeddings = 8192;  // llama3
};

struct LlamaConfig {
  std::string architecture = "LlamaForCausalLM";
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;
  int64_t head_dim = 0;               // hidden_size / heads when absent
  double rms_norm_eps = 1e-6;         // transformers' default when absent
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  bool tie_word_embeddings = false;
  int64_t max_position_embeddings = 2048;  // Mistral's default when absent: 131072
  std::optional<int64_t> sliding_window;  // Mistral (default 4096 when absent, null = none): the
                                          // window of every layer; Qwen: of "sliding_attention" layers
  bool attention_bias = false;        // Llama / Qwen3: biases on q, k, v and o (Qwen2: see qkv_bias)
  bool use_sliding_window = false;    // Qwen
  int64_t max_window_layers = 28;     // Qwen (transformers' default)
  std::vector<std::string> layer_types;  // Qwen: "full_attention" / "sliding_attention" per layer
  int64_t bos_token_id = 1, eos_token_id = 2;  // -1 when null; eos = the first of a list
  std::vector<int64_t> eos_token_ids = {2};    // all of them (Llama 3.1 lists three)
  std::string torch_dtype = "float32";
  nlohmann::json lawcat;              // the "lawcat" section (attention settings), if any

  bool is_qwen2() const { return architecture == "Qwen2ForCausalLM"; }
  bool is_qwen3() const { return architecture == "Qwen3ForCausalLM"; }
  bool is_qwen() const { return is_qwen2() || is_qwen3(); }
  bool is_mistral() const { return architecture == "MistralForCausalLM"; }
  bool qkv_bias() const { return is_qwen2() || attention_bias; }   // q/k/v projections have biases
  bool o_bias() const { return !is_qwen2() && attention_bias; }    // o_proj has a bias
  bool qk_norm() const { return is_qwen3(); }                      // q_norm / k_norm [head_dim]
  // The softmax attention window of layer i (0 = full causal attention): every layer of a
  // Mistral with a sliding_window, Qwen's "sliding_attention" layers. Query i sees keys j with
  // i - window < j <= i (transformers' sliding_window_overlay: kv_idx > q_idx - sliding_window).
  int64_t attention_window(int64_t layer) const;
};

// `where` prefixes messages (the file name). Checks types, positivity,
// num_attention_heads % num_key_value_heads == 0, hidden_size % heads == 0 when
// head_dim is absent.
LlamaConfig parse_llama_config(const nlohmann::json& j, const std::string& where);
LlamaConfig load_llama_config(const std::filesystem::path& config_json);
// A transformers-loadable config.json ("architectures", "model_type", ...);
// parse_llama_config(to_json(c)) == c.
nlohmann::json to_json(const LlamaConfig& c);
void save_llama_config(const std::filesystem::path& config_json, const LlamaConfig& c);  // atomic
bool operator==(const RopeScaling& a, const RopeScaling& b);
bool operator==(const LlamaConfig& a, const LlamaConfig& b);

}  // namespace lawcat::io
