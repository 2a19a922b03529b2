#include "model/checkpoint.h"

#include <torch/csrc/autograd/grad_mode.h>

#include <optional>
#include <set>

#include "io/llama_weights.h"
#include "io/safetensors.h"
#include "model/device.h"
#include "util/error.h"
#include "util/format.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/progress.h"

namespace lawcat::model {
namespace stdfs = std::filesystem;

// ---- loading -----------------------------------------------------------------------

void load_weights(torch::nn::Module& module, const stdfs::path& dir, const LoadWeightsOptions& opt) {
  io::WeightSet weights(dir);
  std::vector<std::pair<std::string, at::Tensor>> targets;
  for (auto& p : module.named_parameters(/*recurse=*/true)) targets.emplace_back(p.key(), p.value());
  for (auto& b : module.named_buffers(/*recurse=*/true)) targets.emplace_back(b.key(), b.value());

  // 1. Check every name and shape before loading anything.
  std::vector<std::string> problems;
  std::vector<std::pair<std::string, at::Tensor>> to_load, keep;
  std::set<std::string> wanted;
  for (auto& [name, t] : targets) {
    wanted.insert(name);
    if (!weights.contains(name)) {
      if (opt.optional && opt.optional(name)) {
        keep.emplace_back(name, t);
      } else {
        problems.push_back("missing tensor " + name + " (expected shape " + format::shape(t.sizes().vec()) + ")");
      }
      continue;
    }
    const auto& info = weights.info(name);
    if (at::IntArrayRef(info.shape) != t.sizes()) {
      problems.push_back("tensor " + name + " in " + weights.file(name).path().string() + ": expected shape " +
                         format::shape(t.sizes().vec()) + ", got " + format::shape(info.shape));
      continue;
    }
    to_load.emplace_back(name, t);
  }
  if (!problems.empty()) {
    std::string msg = "checkpoint " + dir.string() + " does not match the model (" +
                      std::to_string(problems.size()) + " problem" + (problems.size() > 1 ? "s" : "") + "):";
    const size_t shown = std::min<size_t>(problems.size(), 20);
    for (size_t i = 0; i < shown; ++i) msg += "\n  " + problems[i];
    if (shown < problems.size()) msg += "\n  ... and " + std::to_string(problems.size() - shown) + " more";
    throw CheckpointError(msg);
  }
  std::vector<std::string> extra;
  for (const auto& n : weights.names()) {
    if (!wanted.count(n)) extra.push_back(n);
  }
  if (!extra.empty()) {
    std::string list;
    for (size_t i = 0; i < extra.size() && i < 8; ++i) list += (i ? ", " : "") + extra[i];
    if (extra.size() > 8) list += ", ...";
    log::warn("checkpoint ", dir.string(), ": ignoring ", extra.size(),
              " tensor(s) the model does not use: ", list);
  }

  // 2. Load. set_data keeps each parameter's identity (and registration) and
  //    frees the placeholder it replaces.
  torch::NoGradGuard no_grad;
  int64_t bytes = 0;
  for (auto& [name, t] : to_load) bytes += static_cast<int64_t>(t.nbytes());
  std::optional<Progress> progress;  // only for models big enough to take a while
  if (bytes > (int64_t(256) << 20)) {
    progress.emplace("loading " + dir.filename().string(), static_cast<int64_t>(to_load.size()), "tensors");
  }
  for (auto& [name, t] : to_load) {
    const at::ScalarType dt = at::isFloatingType(t.scalar_type()) ? opt.dtype : t.scalar_type();
    t.set_data(weights.load(name, opt.device, dt));
    if (progress) progress->advance();
  }
  if (progress) progress->finish();
  for (auto& [name, t] : keep) {
    const at::ScalarType dt = at::isFloatingType(t.scalar_type()) ? opt.dtype : t.scalar_type();
    t.set_data(t.to(opt.device, dt));
  }
}

LlamaForCausalLM load_llama(const stdfs::path& dir, at::Device device, at::ScalarType dtype) {
  {
    LAWCAT_CHECK(stdfs::is_directory(dir), CheckpointError,
                 "model directory " << dir.string() << " does not exist");
    const auto config_path = dir / "config.json";
    LAWCAT_CHECK(stdfs::exists(config_path), CheckpointError,
                 "missing " << config_path.string() << " (expected a Hugging Face model directory)");
    io::LlamaConfig config = io::load_llama_config(config_path);
    validate_llama_config(config, config_path.string());
    // Names and shapes from the safetensors headers before any module is built.
    io::check_llama_weights(config, io::WeightSet(dir), config_path);
    LlamaForCausalLM model = build_llama(config);
    LoadWeightsOptions opt;
    opt.device = device;
    opt.dtype = dtype;
    load_weights(*model, dir, opt);
    model->eval();
    log::info("loaded ", dir.string(), ": ", config.num_hidden_layers, " layers, hidden ",
              config.hidden_size, ", heads ", config.num_attention_heads, "/", config.num_key_value_heads,
              ", vocab ", config.vocab_size, " (", dtype_name(dtype), " on ", device.str(), ")");
    return model;
  }
}

void save_llama(LlamaForCausalLMImpl& model, const stdfs::path& dir, int shards) {
  stdfs::create_directories(dir);
  io::LlamaConfig config = model.config();
  config.torch_dtype = dtype_name(model.dtype());
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (auto& p : model.named_parameters(true)) tensors.emplace_back(p.key(), p.value().detach());
  for (auto& b : model.named_buffers(true)) tensors.emplace_back(b.key(), b.value().detach());
  io::save_weight_set(dir, tensors, shards);
  io::save_llama_config(dir / "config.json", config);
}

int copy_tokenizer_files(const stdfs::path& from, const stdfs::path& to) {
  int n = 0;
  for (const char* name : {"tokenizer.json", "tokenizer.model", "tokenizer.bin", "tokenizer_config.json",
                           "special_tokens_map.json", "generation_config.json"}) {
    const auto src = from / name;
    if (!stdfs::exists(src)) continue;
    stdfs::create_directories(to);
    fs::atomic_write_text(to / name, fs::read_text(src));
    ++n;
  }
  return n;
}

LlamaForCausalLM load_llama(const stdfs::path& dir, const std::string& device, const std::string& dtype) {
  const at::Device dev = parse_device(device);
  LAWCAT_CHECK(stdfs::is_directory(dir), CheckpointError, "model directory " << dir.string() << " does not exist");
  LAWCAT_CHECK(stdfs::exists(dir / "config.json"), CheckpointError,
               "missing " << (dir / "config.json").string() << " (expected a Hugging Face model directory)");
  const io::LlamaConfig config = io::load_llama_config(dir / "config.json");
  return load_llama(dir, dev, resolve_dtype(dtype, dev, config));
}

}  // namespace lawcat::model
