#include "model/swap.h"

#include <set>

#include "config/yaml.h"
#include "io/hf_config.h"
#include "io/llama_weights.h"
#include "io/safetensors.h"
#include "model/checkpoint.h"
#include "model/device.h"
#include "util/error.h"
#include "util/log.h"

namespace lawcat::model {

namespace {
const char* const kLawcatNames[] = {".self_attn.conv_q", ".self_attn.conv_k", ".self_attn.conv_v",
                                    ".self_attn.feature_map", ".self_attn.gate_down.", ".self_attn.gate_up.",
                                    ".self_attn.window_weight"};
}  // namespace

bool is_lawcat_parameter_name(const std::string& name) {
  for (const char* n : kLawcatNames)
    if (name.find(n) != std::string::npos) return true;
  return false;
}

std::vector<int64_t> swap_to_lawcat(LlamaForCausalLMImpl& model, const config::AttentionConfig& settings) {
  LAWCAT_CHECK(settings.kind == "lawcat", ConfigError,
               "attention.kind: swap_to_lawcat needs 'lawcat' (got '" << settings.kind << "')");
  const auto& c = model.config();
  const int64_t L = model.num_layers();
  std::vector<int64_t> layers = settings.layers;
  if (layers.empty())
    for (int64_t i = 0; i < L; ++i) layers.push_back(i);
  std::set<int64_t> seen;
  for (int64_t i : layers) {
    LAWCAT_CHECK(i >= 0 && i < L, ConfigError,
                 "attention.layers: layer index " << i << " is out of range (the model has " << L
                                                  << " layers: 0.." << L - 1 << ")");
    LAWCAT_CHECK(seen.insert(i).second, ConfigError, "attention.layers: layer index " << i << " is listed twice");
  }
  LawcatOptions opts = lawcat_options_from_config(settings, c.hidden_size, c.num_attention_heads,
                                                  c.num_key_value_heads, c.head_dim);
  for (int64_t i : layers) {
    auto& layer = model.layer(i);
    LlamaAttention teacher = layer->softmax_attention();
    LAWCAT_CHECK(teacher, ConfigError, "attention.layers: layer " << i << " is already swapped");
    layer->set_mixer(std::make_shared<LawcatAttentionImpl>(opts, teacher));
  }
  config::AttentionConfig saved = settings;
  saved.layers = std::vector<int64_t>(seen.begin(), seen.end());
  model.mutable_config().lawcat = config::attention_to_json(saved);
  freeze_teacher(model);
  return saved.layers;
}

std::vector<std::pair<int64_t, LawcatAttention>> lawcat_layers(LlamaForCausalLMImpl& model) {
  std::vector<std::pair<int64_t, LawcatAttention>> out;
  for (int64_t i = 0; i < model.num_layers(); ++i)
    if (auto m = std::dynamic_pointer_cast<LawcatAttentionImpl>(model.layer(i)->self_attn))
      out.emplace_back(i, m);
  return out;
}

std::vector<std::pair<std::string, at::Tensor>> lawcat_parameters(LlamaForCausalLMImpl& model) {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (auto& [i, m] : lawcat_layers(model))
    for (auto& [name, t] : m->lawcat_parameters())
      out.emplace_back("model.layers." + std::to_string(i) + ".self_attn." + name, t);
  return out;
}

std::vector<std::pair<std::string, at::Tensor>> teacher_parameters(LlamaForCausalLMImpl& model) {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (auto& p : model.named_parameters())
    if (!is_lawcat_parameter_name(p.key())) out.emplace_back(p.key(), p.value());
  return out;
}

void set_mixer_mode(LlamaForCausalLMImpl& model, MixerMode mode) {
  for (auto& [i, m] : lawcat_layers(model)) {
    m->set_mode(mode);
    m->clear_recorded();
  }
}

void freeze_teacher(LlamaForCausalLMImpl& model) {
  for (auto& p : model.named_parameters()) p.value().set_requires_grad(is_lawcat_parameter_name(p.key()));
}

void save_lawcat_parameters(LlamaForCausalLMImpl& model, const std::filesystem::path& file) {
  auto params = lawcat_parameters(model);
  for (auto& [n, t] : params) t = t.detach().to(at::kCPU, at::kFloat);
  std::map<std::string, std::string> meta{{"format", "pt"},
                                          {"lawcat", model.config().lawcat.dump()}};
  io::save_safetensors(file, params, meta);
}

void load_lawcat_parameters(LlamaForCausalLMImpl& model, const std::filesystem::path& file) {
  io::SafetensorsFile f(file);
  auto params = lawcat_parameters(model);
  std::string problems;
  for (auto& [n, t] : params) {
    if (!f.contains(n)) {
      problems += "\n  missing tensor '" + n + "'";
      continue;
    }
    const auto& info = f.tensors().at(n);
    if (info.shape != t.sizes().vec())
      problems += "\n  tensor '" + n + "': expected shape " + c10::str(t.sizes()) + ", got " + c10::str(info.shape);
  }
  LAWCAT_CHECK(problems.empty(), CheckpointError, file.string() << ": LAWCAT parameters do not match the model:" << problems);
  at::NoGradGuard no_grad;
  for (auto& [n, t] : params) t.copy_(f.load(n, t.device(), t.scalar_type()));
}

LlamaForCausalLM load_model(const std::filesystem::path& dir, at::Device device, at::ScalarType dtype) {
  return with_context("while loading model " + dir.string(), [&] {
    io::LlamaConfig cfg = io::load_llama_config(dir / "config.json");
    if (cfg.lawcat.is_null() || cfg.lawcat.empty()) return load_llama(dir, device, dtype);
    validate_llama_config(cfg, (dir / "config.json").string());
    config::AttentionConfig settings = config::attention_from_json(cfg.lawcat, (dir / "config.json").string());
    // Names and shapes from the safetensors headers before any module is built.
    io::check_llama_weights(cfg, io::WeightSet(dir), dir / "config.json");
    LlamaForCausalLM model = build_llama(cfg);
    swap_to_lawcat(*model, settings);
    LoadWeightsOptions lo;
    lo.device = device;
    lo.dtype = dtype;
    load_weights(*model, dir, lo);
    // LAWCAT parameters are trained in fp32: reload them without the cast.
    io::WeightSet ws(dir);
    at::NoGradGuard no_grad;
    for (auto& [n, t] : lawcat_parameters(*model)) t.set_data(ws.load(n, device, at::kFloat));
    freeze_teacher(*model);
    return model;
  });
}

void check_model_dir(const std::filesystem::path& dir) {
  LAWCAT_CHECK(std::filesystem::is_directory(dir), CheckpointError,
               dir.string() << (std::filesystem::exists(dir) ? ": not a directory (a model is a folder with config.json)"
                                                              : ": model directory not found"));
}

LlamaForCausalLM load_model(const std::filesystem::path& dir, const std::string& device,
                            const std::string& dtype) {
  check_model_dir(dir);
  at::Device dev = parse_device(device);
  io::LlamaConfig cfg = io::load_llama_config(dir / "config.json");
  return load_model(dir, dev, resolve_dtype(dtype, dev, cfg));
}

}  // namespace lawcat::model
