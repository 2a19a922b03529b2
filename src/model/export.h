// Export a trained model as a Hugging Face-layout directory that
// model::load_model (and so `lawcat generate` / `ppl` / the evals) loads
// directly:
//
//   config.json          the teacher's config + the "lawcat" section (attention settings)
//   model.safetensors    every weight, LoRA merged (W + s·B A); LAWCAT parameters in fp32
//   tokenizer files      copied from the teacher directory
//   modeling_lawcat.py, configuration_lawcat.py   LAWCAT students only (python/lawcat_hf/, embedded
//                        at build time); config.json then has "model_type": "lawcat" and an "auto_map",
//                        so transformers' AutoModelForCausalLM.from_pretrained(dir, trust_remote_code=True)
//                        loads it (a plain teacher export stays "llama" / "mistral")
//
// Written into a temporary directory beside the target and renamed into place.
#pragma once
#include <ATen/ATen.h>

#include <filesystem>

#include "model/llama.h"
#include "model/lora.h"

namespace lawcat::model {

struct ExportOptions {
  at::ScalarType dtype = at::kFloat;      // teacher weights; LAWCAT parameters stay fp32
  std::filesystem::path tokenizer_dir;    // where the tokenizer files come from
  int shards = 1;
};

// `lora` may be null. The model is not modified. Returns the number of tensors written.
int64_t export_model(LlamaForCausalLMImpl& model, const LoraAdapters* lora, const std::filesystem::path& out_dir,
                     const ExportOptions& options);

}  // namespace lawcat::model
