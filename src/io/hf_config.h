// Hugging Face config.json for Llama-family decoders (LlamaForCausalLM,
// MistralForCausalLM). Missing required fields and unsupported values are
// CheckpointErrors naming the file and the key.
#pragma once
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

namespace lawcat::io {

struct RopeScaling {
  std::string type = "none";          // "none", "linear", "llama3"
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
  double rms_norm_eps = 1e-5;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  bool tie_word_embeddings = false;
  int64_t max_position_embeddings = 2048;
  std::optional<int64_t> sliding_window;  // Mistral; informational
  int64_t bos_token_id = 1, eos_token_id = 2;
  std::string torch_dtype = "float32";
  nlohmann::json lawcat;              // the "lawcat" section (attention settings), if any
};

LlamaConfig parse_llama_config(const nlohmann::json& j, const std::string& where);
LlamaConfig load_llama_config(const std::filesystem::path& config_json);
nlohmann::json to_json(const LlamaConfig& c);
void save_llama_config(const std::filesystem::path& config_json, const LlamaConfig& c);

}  // namespace lawcat::io
