#include "eval/generate.h"

#include <torch/csrc/autograd/grad_mode.h>

#include <algorithm>
#include <chrono>
#include <numeric>

#include "util/error.h"
#include "util/log.h"

namespace lawcat::eval {

Sampler::Sampler(const SamplingOptions& options) : options_(options), rng_(options.seed) {
  LAWCAT_CHECK(options.greedy || options.temperature >= 0, ConfigError,
               "sampling: temperature must be >= 0, got " << options.temperature);
  LAWCAT_CHECK(options.top_p > 0 && options.top_p <= 1, ConfigError,
               "sampling: top_p must be in (0, 1], got " << options.top_p);
}

int64_t Sampler::sample(const at::Tensor& logits) {
  TORCH_CHECK(logits.dim() == 1, "Sampler: logits must be [V], got ", logits.sizes());
  if (options_.greedy || options_.temperature == 0) return logits.argmax().item<int64_t>();
  // Probabilities in double on the CPU: deterministic for a seed on any device.
  at::Tensor probs = (logits.to(at::kCPU, at::kDouble) / options_.temperature).softmax(0).contiguous();
  const double* p = probs.data_ptr<double>();
  const int64_t V = probs.size(0);
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  const double coin = uniform(rng_);
  if (options_.top_p >= 1.0) {
    double cdf = 0;
    for (int64_t i = 0; i < V; ++i) {
      cdf += p[i];
      if (coin < cdf) return i;
    }
    return V - 1;
  }
  // Nucleus: the smallest set of most likely tokens whose mass exceeds top_p.
  std::vector<int64_t> order(V);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return p[a] > p[b]; });
  double mass = 0;
  size_t keep = 0;
  while (keep < order.size()) {
    mass += p[order[keep++]];
    if (mass > options_.top_p) break;
  }
  const double r = coin * mass;
  double cdf = 0;
  for (size_t i = 0; i < keep; ++i) {
    cdf += p[order[i]];
    if (r < cdf) return order[i];
  }
  return order[keep - 1];
}

GenerateResult generate_ids(model::LlamaForCausalLMImpl& model, const std::vector<int64_t>& prompt_ids,
                            const GenerateOptions& options, const std::function<void(int64_t)>& on_token) {
  LAWCAT_CHECK(!prompt_ids.empty(), DataError, "generate: the prompt has no tokens (start with BOS)");
  torch::NoGradGuard no_grad;
  GenerateResult result;
  result.prompt_ids = prompt_ids;
  result.stop_reason = "max_new_tokens";
  Sampler sampler(options.sampling);
  model::DecodeState state = model.new_decode_state(1);
  auto ids_opts = at::TensorOptions().dtype(at::kLong);
  bool warned_positions = false;

  using clock = std::chrono::steady_clock;
  auto t0 = clock::now();
  at::Tensor input = at::tensor(prompt_ids, ids_opts).unsqueeze(0);  // [1, T]
  at::Tensor last;  // [V] logits of the last position
  for (int64_t step = 0; step < options.max_new_tokens; ++step) {
    at::Tensor hidden = model.hidden_states(input, &state);  // [1, T, D]
    last = model.logits(hidden.select(1, hidden.size(1) - 1)).squeeze(0);  // [V]
    const int64_t next = sampler.sample(last);
    if (step == 0) {
      auto t1 = clock::now();
      result.prefill_seconds = std::chrono::duration<double>(t1 - t0).count();
      t0 = t1;
    }
    result.new_ids.push_back(next);
    if (on_token) on_token(next);
    if (std::find(options.stop_ids.begin(), options.stop_ids.end(), next) != options.stop_ids.end()) {
      result.stop_reason = "stop_id";
      break;
    }
    if (options.warn_positions && !warned_positions && state.position + 1 > model.max_positions()) {
      log::warn("generate: past the model's max_position_embeddings (", model.max_positions(), ")");
      warned_positions = true;
    }
    input = at::tensor(std::vector<int64_t>{next}, ids_opts).unsqueeze(0);  // [1, 1]
  }
  result.decode_seconds = std::chrono::duration<double>(clock::now() - t0).count();
  result.state_bytes = state.memory_bytes();
  return result;
}

GenerateResult generate_text(model::LlamaForCausalLMImpl& model, const text::Tokenizer& tokenizer,
                             const std::string& prompt, GenerateOptions options,
                             const std::function<void(const std::string&)>& on_text) {
  // BOS as the model's own tokenizer pipeline adds it (none for Qwen2 / SmolLM2-style
  // tokenizer.json without a BOS template or add_bos_token).
  std::vector<int64_t> ids = tokenizer.encode(prompt, /*add_bos=*/tokenizer.add_bos_by_default());
  if (prompt.empty()) {
    ids.clear();
    for (int64_t id : {tokenizer.bos_id(), model.config().bos_token_id, tokenizer.eos_id(), model.config().eos_token_id})
      if (id >= 0 && ids.empty()) ids = {id};
  }
  LAWCAT_CHECK(!ids.empty(), DataError, "generate: the prompt encodes to no tokens and the tokenizer has no BOS");
  if (options.stop_ids.empty()) {
    std::vector<int64_t> ids_to_stop = model.config().eos_token_ids;
    ids_to_stop.push_back(tokenizer.eos_id());
    ids_to_stop.push_back(tokenizer.bos_id());  // llama2.c-style models emit BOS between documents
    for (int64_t id : ids_to_stop) {
      if (id >= 0 && std::find(options.stop_ids.begin(), options.stop_ids.end(), id) == options.stop_ids.end()) {
        options.stop_ids.push_back(id);
      }
    }
  }
  std::string text;
  int64_t prev = ids.back();
  auto stop = options.stop_ids;
  GenerateResult r = generate_ids(model, ids, options, [&](int64_t id) {
    if (std::find(stop.begin(), stop.end(), id) == stop.end()) {
      std::string piece = tokenizer.decode_piece(prev, id);
      text += piece;
      if (on_text) on_text(piece);
    }
    prev = id;
  });
  r.text = std::move(text);
  return r;
}

}  // namespace lawcat::eval
