// Attention swap: turn a loaded Llama/Mistral teacher into a LAWCAT model, in
// place. Selected layers get a LawcatAttention that shares the teacher's q/k/v/o
// projections; every teacher weight is frozen, the new LAWCAT parameters are
// trainable and collected as a named parameter group. The settings go into the
// model config's "lawcat" section, so save_llama/load_model round-trip exactly.
#pragma once
#include <ATen/ATen.h>

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "config/schema.h"
#include "model/lawcat_attention.h"
#include "model/llama.h"

namespace lawcat::model {

// Swaps the layers named in settings.layers (empty = all). Throws ConfigError
// naming the setting for an out-of-range or repeated layer index or bad knobs.
// Returns the swapped layer indices.
std::vector<int64_t> swap_to_lawcat(LlamaForCausalLMImpl& model, const config::AttentionConfig& settings);

// The LAWCAT mixers of a model (empty for a plain teacher), with their layer index.
std::vector<std::pair<int64_t, LawcatAttention>> lawcat_layers(LlamaForCausalLMImpl& model);

// Named parameter groups by full HF-style name ("model.layers.3.self_attn.conv_q").
std::vector<std::pair<std::string, at::Tensor>> lawcat_parameters(LlamaForCausalLMImpl& model);
std::vector<std::pair<std::string, at::Tensor>> teacher_parameters(LlamaForCausalLMImpl& model);
// True for the full name of a LAWCAT parameter.
bool is_lawcat_parameter_name(const std::string& name);

// Student (default), teacher (the original softmax model, exactly) or distill.
void set_mixer_mode(LlamaForCausalLMImpl& model, MixerMode mode);

// Freeze everything but the LAWCAT parameters (stage 1), or freeze all.
void freeze_teacher(LlamaForCausalLMImpl& model);

// LAWCAT parameters alone, as safetensors (fp32).
void save_lawcat_parameters(LlamaForCausalLMImpl& model, const std::filesystem::path& file);
void load_lawcat_parameters(LlamaForCausalLMImpl& model, const std::filesystem::path& file);

// Loads any model directory: a plain teacher, or a LAWCAT model whose
// config.json has a "lawcat" section (swapped, then every weight loaded; the
// LAWCAT parameters stay fp32 whatever `dtype`).
LlamaForCausalLM load_model(const std::filesystem::path& dir, at::Device device = at::kCPU,
                            at::ScalarType dtype = at::kFloat);
// CheckpointError unless `dir` is a folder: "not found", or "not a directory" for a file.
void check_model_dir(const std::filesystem::path& dir);
// load_model for the CLI: device ("cpu", "cuda", "cuda:N") and dtype ("auto", ...) as strings.
LlamaForCausalLM load_model(const std::filesystem::path& dir, const std::string& device,
                            const std::string& dtype);

}  // namespace lawcat::model
