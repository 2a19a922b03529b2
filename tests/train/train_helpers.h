// Shared by the train tests: the tiny Llama shape they train (2 layers, hidden 32,
// 4 query / 2 kv heads of 8, vocab 64, tied embeddings).
#pragma once
#include "io/hf_config.h"

namespace lawcat::test {

inline io::LlamaConfig tiny_train_config() {
  io::LlamaConfig c;
  c.vocab_size = 64;
  c.hidden_size = 32;
  c.intermediate_size = 48;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 8;
  c.rms_norm_eps = 1e-5;
  c.max_position_embeddings = 64;
  c.tie_word_embeddings = true;
  return c;
}

}  // namespace lawcat::test
