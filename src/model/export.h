// Export a trained model as a Hugging Face-layout directory that
// model::load_model (and so `lawcat generate` / `ppl` / the evals) loads
// directly:
//
//   config.json          the teacher's config + the "lawcat" section (attention settings)
//   model.safetensors    every weight, LoRA merged (W + s·B A); LAWCAT parameters in fp32
//   tokenizer files      copied from the teacher directory
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
