// Helpers for tests/eval: tiny random models (vocab 512, so the stories260K
// tokenizer tok512.bin fits them) written as model directories.
#pragma once
#include <ATen/ATen.h>

#include <filesystem>
#include <string>

#include "common/catch.h"
#include "common/tiny_llama.h"
#include "config/schema.h"
#include "io/hf_config.h"
#include "model/checkpoint.h"
#include "model/swap.h"
#include "model/llama.h"

namespace lawcat::test {

// Tiny models run fastest on one thread: OpenMP barriers dominate otherwise,
// badly so on a loaded 2-core machine. Restores the thread count on exit.
struct SingleThread {
  int saved = at::get_num_threads();
  SingleThread() { at::set_num_threads(1); }
  ~SingleThread() { at::set_num_threads(saved); }
};

// 2 layers, hidden 32, 4 query / 2 kv heads of 8, vocab 512, tied embeddings.
inline io::LlamaConfig tiny_eval_config(int64_t max_positions = 2048) {
  return tiny_llama_config({512, 32, 64, 2, 8, max_positions, true});
}

// A random model with weights large enough that attention is not uniform.
inline model::LlamaForCausalLM tiny_random_model(const io::LlamaConfig& c, uint64_t seed, bool lawcat,
                                                 int64_t window = 0) {
  at::manual_seed(seed);
  model::LlamaForCausalLM m = model::build_llama(c);
  at::NoGradGuard g;
  for (auto& p : m->parameters()) p.normal_(0.0, 0.2);
  if (lawcat) {
    config::AttentionConfig a;
    a.window = window;
    model::swap_to_lawcat(*m, a);
    for (auto& [n, t] : model::lawcat_parameters(*m)) t.add_(at::randn_like(t) * 0.3);
  }
  return m;
}

// Writes a tiny model directory with tok512.bin as its tokenizer.
inline void write_tiny_model_dir(const std::filesystem::path& dir, const std::filesystem::path& tok512, uint64_t seed,
                                 bool lawcat, int64_t max_positions = 2048) {
  auto m = tiny_random_model(tiny_eval_config(max_positions), seed, lawcat);
  model::save_llama(*m, dir);
  std::filesystem::copy_file(tok512, dir / "tokenizer.bin", std::filesystem::copy_options::overwrite_existing);
}

}  // namespace lawcat::test
