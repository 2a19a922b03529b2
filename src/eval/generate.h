// Autoregressive generation with a decode state (KV cache for softmax
// attention, recurrent state for LAWCAT): one prefill of the prompt, then one
// token per step. Sampling: greedy argmax, or temperature + nucleus (top-p)
// with a seeded generator, as llama2.c's run.c.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "model/llama.h"
#include "text/tokenizer.h"

namespace lawcat::eval {

struct SamplingOptions {
  bool greedy = true;
  double temperature = 1.0;  // > 0 (0 means greedy)
  double top_p = 1.0;        // in (0, 1]; 1 = sample from the full distribution
  uint64_t seed = 0;
};

struct GenerateOptions {
  int64_t max_new_tokens = 256;
  SamplingOptions sampling;
  // Generation stops after producing any of these ids (typically EOS, and BOS,
  // which llama2.c-style models emit between documents).
  std::vector<int64_t> stop_ids;
  // Warn once when decoding goes past the model's max_position_embeddings
  // (the eval marks such lengths itself).
  bool warn_positions = true;
};

struct GenerateResult {
  std::vector<int64_t> prompt_ids;
  std::vector<int64_t> new_ids;    // generated ids, the stop id included when one was hit
  std::string text;                // decoded continuation, as streamed (generate_text only)
  std::string stop_reason;         // "stop_id" or "max_new_tokens"
  double prefill_seconds = 0, decode_seconds = 0;
  int64_t state_bytes = 0;         // decode-state memory at the end
};

class Sampler {
 public:
  explicit Sampler(const SamplingOptions& options);
  // logits [V] (any dtype/device) -> token id.
  int64_t sample(const at::Tensor& logits);

 private:
  SamplingOptions options_;
  std::mt19937_64 rng_;
};

// Generates from `prompt_ids` (non-empty; batch 1). `on_token` is called with
// each new id as soon as it is chosen.
GenerateResult generate_ids(model::LlamaForCausalLMImpl& model, const std::vector<int64_t>& prompt_ids,
                            const GenerateOptions& options,
                            const std::function<void(int64_t)>& on_token = {});

// A batch of prompts decoded together (each non-empty): left-padded to the longest with
// `pad_id`, per-row attention masks and positions (model::LlamaForCausalLMImpl::hidden_states),
// one prefill, then one token per step for every row; a row that has stopped keeps decoding
// harmlessly (its tokens are not recorded) until every row has stopped or max_new_tokens.
// Greedy: each row's tokens are those generate_ids gives the prompt alone. Sampling: each row
// has its own Sampler seeded with options.sampling.seed. prefill_seconds / decode_seconds are
// the batch's; state_bytes the batch's state divided by the rows. One prompt: generate_ids.
std::vector<GenerateResult> generate_batch(model::LlamaForCausalLMImpl& model,
                                           const std::vector<std::vector<int64_t>>& prompts,
                                           const GenerateOptions& options, int64_t pad_id = 0);

// The ids generate_text would give the model for `prompt` (BOS as the tokenizer adds it; an
// empty prompt: document_start_id), and its default stop ids (config EOS,
// tokenizer EOS and BOS) when options.stop_ids is empty.
std::vector<int64_t> prompt_ids_for(model::LlamaForCausalLMImpl& model, const text::Tokenizer& tokenizer,
                                    const std::string& prompt);
std::vector<int64_t> default_stop_ids(model::LlamaForCausalLMImpl& model, const text::Tokenizer& tokenizer);

// The token a document starts from when nothing precedes it (an empty prompt, ppl's first token):
// the tokenizer's BOS, else the config's bos_token_id (Qwen: <|endoftext|>), else the config's EOS,
// else the tokenizer's EOS; -1 when the model names none of them. One rule for generate, ppl, eval.
int64_t document_start_id(model::LlamaForCausalLMImpl& model, const text::Tokenizer& tokenizer);

// The stop ids from their sources, in this order, without repeats or negative ids: config EOS
// ids, the tokenizer's EOS and BOS (llama2.c-style models emit BOS between documents).
struct StopIdsSource {
  std::vector<int64_t> config_eos;
  int64_t tokenizer_eos = -1, tokenizer_bos = -1;
};
std::vector<int64_t> stop_ids_for(const StopIdsSource& s);

// Encodes `prompt` (with BOS; an empty prompt is BOS alone), generates, and
// streams the decoded text of each new token to `on_text`. Stops at the
// tokenizer's / config's EOS and at BOS unless options.stop_ids is set.
GenerateResult generate_text(model::LlamaForCausalLMImpl& model, const text::Tokenizer& tokenizer,
                             const std::string& prompt, GenerateOptions options,
                             const std::function<void(const std::string&)>& on_text = {});

}  // namespace lawcat::eval
