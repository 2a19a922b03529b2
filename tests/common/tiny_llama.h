// The one definition of the tiny random-weight Llama configs the tests build. Each folder's
// helper (model_helpers.h, eval_helpers.h, train_helpers.h, test_lawcat_model.cpp) names the
// shape its expected values were written against. The rest is written out here, so the tests do
// not move with io::LlamaConfig's defaults: a Llama, rope theta 10000 (rope scaling left at its
// default, none), RMSNorm eps 1e-5, BOS 1, EOS 2, float32.
#pragma once
#include <cstdint>

#include "io/hf_config.h"

namespace lawcat::test {

struct TinyLlama {
  int64_t vocab, hidden, intermediate, layers, head_dim, max_positions;
  bool tied;
  int64_t heads = 4, kv_heads = 2;
};

inline io::LlamaConfig tiny_llama_config(const TinyLlama& t) {
  io::LlamaConfig c;
  c.architecture = "LlamaForCausalLM";
  c.vocab_size = t.vocab;
  c.hidden_size = t.hidden;
  c.intermediate_size = t.intermediate;
  c.num_hidden_layers = t.layers;
  c.num_attention_heads = t.heads;
  c.num_key_value_heads = t.kv_heads;
  c.head_dim = t.head_dim;
  c.max_position_embeddings = t.max_positions;
  c.rms_norm_eps = 1e-5;
  c.rope_theta = 10000.0;
  c.tie_word_embeddings = t.tied;
  c.bos_token_id = 1;
  c.eos_token_id = 2;
  c.eos_token_ids = {2};
  c.torch_dtype = "float32";
  return c;
}

}  // namespace lawcat::test
