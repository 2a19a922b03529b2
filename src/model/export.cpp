#include "model/export.h"

#include <unistd.h>

#include <map>

#include "io/hf_config.h"
#include "io/safetensors.h"
#include "model/checkpoint.h"
#include "model/device.h"
#include "model/swap.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/log.h"

// kModelingLawcatPy, kConfigurationLawcatPy: python/lawcat_hf/*.py (cmake/lawcat_python_files.cmake).
#include "lawcat_python_files.h"

namespace lawcat::model {
namespace stdfs = std::filesystem;

namespace {
// config.json; a LAWCAT student also gets the Python modeling files and the auto_map that points
// transformers at them (AutoModelForCausalLM.from_pretrained(dir, trust_remote_code=True)).
// A plain teacher (no lawcat section, or kind "softmax") stays a "llama" / "mistral" directory.
void write_config_and_modeling(const stdfs::path& dir, const io::LlamaConfig& config) {
  nlohmann::json j = io::to_json(config);
  const bool student = config.lawcat.is_object() && config.lawcat.value("kind", std::string("lawcat")) == "lawcat";
  if (student) {
    j["model_type"] = "lawcat";
    j["auto_map"] = {{"AutoConfig", "configuration_lawcat.LawcatConfig"},
                     {"AutoModelForCausalLM", "modeling_lawcat.LawcatForCausalLM"}};
    fs::atomic_write_text(dir / "modeling_lawcat.py", kModelingLawcatPy);
    fs::atomic_write_text(dir / "configuration_lawcat.py", kConfigurationLawcatPy);
  }
  fs::atomic_write_text(dir / "config.json", j.dump(2) + "\n");
}
}  // namespace

int64_t export_model(LlamaForCausalLMImpl& model, const LoraAdapters* lora, const stdfs::path& out_dir,
                     const ExportOptions& o) {
  at::NoGradGuard no_grad;
  std::map<std::string, at::Tensor> merged;
  if (lora)
    for (auto& [n, t] : lora->merged_weights(o.dtype)) merged[n] = t;
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (auto& p : model.named_parameters(true)) {
    const std::string& name = p.key();
    if (is_lora_parameter_name(name)) continue;
    at::Tensor t;
    if (auto it = merged.find(name); it != merged.end()) t = it->second;
    else if (is_lawcat_parameter_name(name)) t = p.value().detach().to(at::kFloat);
    else t = p.value().detach().to(o.dtype);
    tensors.emplace_back(name, t.cpu().contiguous());
  }
  for (auto& b : model.named_buffers(true)) tensors.emplace_back(b.key(), b.value().detach().cpu().contiguous());
  LAWCAT_CHECK(merged.empty() || tensors.size() >= merged.size(), Error, "export: merged LoRA weights went missing");

  io::LlamaConfig config = model.config();
  config.torch_dtype = dtype_name(o.dtype);
  const stdfs::path tmp = out_dir.parent_path() / (".tmp-" + out_dir.filename().string() + "-" + std::to_string(::getpid()));
  std::error_code ec;
  fs::remove_tree(tmp, ec);
  try {
    stdfs::create_directories(tmp);
    io::save_weight_set(tmp, tensors, o.shards);
    write_config_and_modeling(tmp, config);
    if (!o.tokenizer_dir.empty()) {
      const int n = copy_tokenizer_files(o.tokenizer_dir, tmp);
      if (n == 0) log::warn("export: no tokenizer files in ", o.tokenizer_dir.string(), " to copy");
    }
    fs::sync_dir(tmp);
  } catch (const std::exception& e) {
    fs::remove_tree(tmp, ec);
    throw CheckpointError("could not export to " + out_dir.string() + ": " + describe_exception(e) +
                          " (an earlier export there is left as it was)");
  }
  if (stdfs::exists(out_dir)) {
    const stdfs::path old = out_dir.parent_path() / (".old-" + out_dir.filename().string() + "-" + std::to_string(::getpid()));
    fs::remove_tree(old, ec);
    stdfs::rename(out_dir, old);
    stdfs::rename(tmp, out_dir);
    fs::remove_tree(old, ec);
  } else {
    stdfs::rename(tmp, out_dir);
  }
  fs::sync_dir(out_dir.parent_path());
  log::info("exported ", tensors.size(), " tensors (", dtype_name(o.dtype), lora ? ", LoRA merged" : "", ") to ",
            out_dir.string());
  return static_cast<int64_t>(tensors.size());
}

}  // namespace lawcat::model
