// Loading and saving a model's weights: a Hugging Face directory (config.json,
// model.safetensors or a sharded index, tokenizer files) <-> LlamaForCausalLM. Every name and
// shape is checked before anything is loaded (model/llama.h is the model itself).
#pragma once
#include <ATen/ATen.h>
#include <torch/nn/module.h>

#include <filesystem>
#include <functional>
#include <string>

#include "model/llama.h"

namespace lawcat::model {

struct LoadWeightsOptions {
  at::Device device = at::kCPU;
  at::ScalarType dtype = at::kFloat;
  // Parameters for which this returns true may be absent from the checkpoint:
  // they keep their current values (converted to device/dtype). E.g. new
  // LAWCAT parameters when loading a teacher checkpoint into a swapped model.
  std::function<bool(const std::string&)> optional;
};

// Loads every parameter and buffer of `module` by its name from the
// checkpoint directory `dir` (model.safetensors or a sharded index). All names
// and shapes are checked before anything is loaded: one CheckpointError lists
// every missing tensor and shape mismatch (tensor, file, expected vs got).
// Tensors in the checkpoint that the module does not have are logged as a warning.
void load_weights(torch::nn::Module& module, const std::filesystem::path& dir,
                  const LoadWeightsOptions& options);

// config.json + weights of `dir` -> model on `device` in `dtype`.
LlamaForCausalLM load_llama(const std::filesystem::path& dir, at::Device device = at::kCPU,
                            at::ScalarType dtype = at::kFloat);

// Writes config.json (torch_dtype set from the parameters) and model.safetensors
// (or `shards` shard files plus an index) into `dir`, creating it.
void save_llama(LlamaForCausalLMImpl& model, const std::filesystem::path& dir, int shards = 1);

// Copies the tokenizer files present in `from` (tokenizer.json, tokenizer.model,
// tokenizer.bin, tokenizer_config.json, special_tokens_map.json,
// generation_config.json) into `to`. Returns how many were copied.
int copy_tokenizer_files(const std::filesystem::path& from, const std::filesystem::path& to);

// load_llama for the CLI: device and dtype given as strings (model/device.h: parse_device,
// resolve_dtype).
LlamaForCausalLM load_llama(const std::filesystem::path& dir, const std::string& device,
                            const std::string& dtype);

}  // namespace lawcat::model
