// The weights a Llama config.json asks for, checked against the safetensors headers
// alone (no tensor is read, no module is built): a config.json that does not fit its
// weights (num_hidden_layers 1000000, a vocab_size with extra zeros) is an error naming
// the key, the file and the tensor, not gigabytes of placeholder modules and an
// allocator error.
#pragma once
#include <filesystem>
#include <string>
#include <vector>

#include "io/hf_config.h"
#include "io/safetensors.h"

namespace lawcat::io {

struct ExpectedTensor {
  std::string name;
  std::vector<int64_t> shape;
  const char* because;  // the config keys that give the shape ("vocab_size, hidden_size")
};

// Names and shapes of LlamaForCausalLM's weights for `c` (HF names, [out, in] for linears),
// layers first .. last; the tensors of `layer` only (the other layers follow the same
// pattern), with the q/k/v(/o) biases and Qwen3's q_norm / k_norm when the config has them. Used with layer = -1 for the layer-independent ones.
std::vector<ExpectedTensor> llama_layer_tensors(const LlamaConfig& c, int64_t layer);
std::vector<ExpectedTensor> llama_global_tensors(const LlamaConfig& c);

// Throws CheckpointError "<config.json> does not fit the weights in <dir> (n problems): ..."
// naming each tensor's file, the expected and the stored shape, and the keys behind them.
// A config with more layers than the weights hold is said in one line. Tensors the
// config does not describe are left to the loader (it warns about them).
void check_llama_weights(const LlamaConfig& c, const WeightSet& weights, const std::filesystem::path& config_json);

}  // namespace lawcat::io
