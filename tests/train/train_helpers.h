// Shared by the train tests: the tiny Llama shape they train (2 layers, hidden 32,
// 4 query / 2 kv heads of 8, vocab 64, tied embeddings).
#pragma once
#include "common/tiny_llama.h"
#include "io/hf_config.h"

namespace lawcat::test {

inline io::LlamaConfig tiny_train_config() { return tiny_llama_config({64, 32, 48, 2, 8, 64, true}); }

}  // namespace lawcat::test
