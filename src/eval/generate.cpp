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

std::vector<GenerateResult> generate_batch(model::LlamaForCausalLMImpl& model,
                                           const std::vector<std::vector<int64_t>>& prompts,
                                           const GenerateOptions& options, int64_t pad_id) {
  LAWCAT_CHECK(!prompts.empty(), DataError, "generate: no prompts");
  for (const auto& p : prompts)
    LAWCAT_CHECK(!p.empty(), DataError, "generate: a prompt has no tokens (start with BOS)");
  if (prompts.size() == 1) return {generate_ids(model, prompts[0], options)};
  torch::NoGradGuard no_grad;
  const int64_t B = static_cast<int64_t>(prompts.size());
  int64_t T = 0;
  for (const auto& p : prompts) T = std::max<int64_t>(T, static_cast<int64_t>(p.size()));
  // Left padding: row b is pads, then its prompt.
  std::vector<int64_t> ids(static_cast<size_t>(B * T), pad_id), mask(static_cast<size_t>(B * T), 0);
  for (int64_t b = 0; b < B; ++b) {
    const auto& p = prompts[static_cast<size_t>(b)];
    const int64_t off = b * T + T - static_cast<int64_t>(p.size());
    std::copy(p.begin(), p.end(), ids.begin() + off);
    std::fill(mask.begin() + off, mask.begin() + (b + 1) * T, 1);
  }
  auto ids_opts = at::TensorOptions().dtype(at::kLong);
  std::vector<GenerateResult> results(static_cast<size_t>(B));
  std::vector<Sampler> samplers;
  std::vector<bool> done(static_cast<size_t>(B), false);
  for (int64_t b = 0; b < B; ++b) {
    results[static_cast<size_t>(b)].prompt_ids = prompts[static_cast<size_t>(b)];
    results[static_cast<size_t>(b)].stop_reason = "max_new_tokens";
    samplers.emplace_back(options.sampling);
  }
  const bool greedy = options.sampling.greedy || options.sampling.temperature == 0;
  model::DecodeState state = model.new_decode_state(B);
  bool warned_positions = false;

  using clock = std::chrono::steady_clock;
  auto t0 = clock::now();
  at::Tensor input = at::tensor(ids, ids_opts).view({B, T});
  at::Tensor attention_mask = at::tensor(mask, ids_opts).view({B, T});
  int64_t longest = T;  // positions used by the longest row
  for (int64_t step = 0; step < options.max_new_tokens; ++step) {
    at::Tensor hidden = model.hidden_states(input, &state, attention_mask);  // [B, T, D]
    attention_mask = at::Tensor();  // only the prefill is padded
    const at::Tensor last = model.logits(hidden.select(1, hidden.size(1) - 1));  // [B, V]
    std::vector<int64_t> next(static_cast<size_t>(B));
    if (greedy) {
      const at::Tensor a = last.argmax(-1).to(at::kCPU).contiguous();
      std::copy(a.data_ptr<int64_t>(), a.data_ptr<int64_t>() + B, next.begin());
    } else {
      for (int64_t b = 0; b < B; ++b)
        if (!done[static_cast<size_t>(b)]) next[static_cast<size_t>(b)] = samplers[static_cast<size_t>(b)].sample(last[b]);
    }
    if (step == 0) {
      auto t1 = clock::now();
      const double s = std::chrono::duration<double>(t1 - t0).count();
      for (auto& r : results) r.prefill_seconds = s;
      t0 = t1;
    }
    bool all_done = true;
    for (int64_t b = 0; b < B; ++b) {
      auto& r = results[static_cast<size_t>(b)];
      if (done[static_cast<size_t>(b)]) {
        next[static_cast<size_t>(b)] = r.new_ids.back();  // keeps decoding harmlessly, not recorded
        continue;
      }
      const int64_t id = next[static_cast<size_t>(b)];
      r.new_ids.push_back(id);
      if (std::find(options.stop_ids.begin(), options.stop_ids.end(), id) != options.stop_ids.end()) {
        r.stop_reason = "stop_id";
        done[static_cast<size_t>(b)] = true;
      }
      all_done = all_done && done[static_cast<size_t>(b)];
    }
    if (all_done) break;
    ++longest;
    if (options.warn_positions && !warned_positions && longest > model.max_positions()) {
      log::warn("generate: past the model's max_position_embeddings (", model.max_positions(), ")");
      warned_positions = true;
    }
    input = at::tensor(next, ids_opts).view({B, 1});
  }
  const double decode = std::chrono::duration<double>(clock::now() - t0).count();
  for (auto& r : results) {
    r.decode_seconds = decode;
    r.state_bytes = state.memory_bytes() / B;
  }
  return results;
}

std::vector<int64_t> prompt_ids_for(model::LlamaForCausalLMImpl& model, const text::Tokenizer& tokenizer,
                                    const std::string& prompt) {
  // BOS as the model's own tokenizer pipeline adds it (none for Qwen2 / SmolLM2-style
  // tokenizer.json without a BOS template or add_bos_token).
  std::vector<int64_t> ids = tokenizer.encode(prompt, /*add_bos=*/tokenizer.add_bos_by_default());
  if (prompt.empty()) {
    ids.clear();
    if (const int64_t start = document_start_id(model, tokenizer); start >= 0) ids = {start};
  }
  LAWCAT_CHECK(!ids.empty(), DataError, "generate: the prompt encodes to no tokens and the tokenizer has no BOS");
  return ids;
}

int64_t document_start_id(model::LlamaForCausalLMImpl& model, const text::Tokenizer& tokenizer) {
  for (int64_t id : {tokenizer.bos_id(), model.config().bos_token_id, model.config().eos_token_id, tokenizer.eos_id()})
    if (id >= 0) return id;
  return -1;
}

std::vector<int64_t> stop_ids_for(const StopIdsSource& s) {
  std::vector<int64_t> ids;
  auto add = [&](int64_t id) {
    if (id >= 0 && std::find(ids.begin(), ids.end(), id) == ids.end()) ids.push_back(id);
  };
  for (int64_t id : s.config_eos) add(id);
  add(s.tokenizer_eos);
  add(s.tokenizer_bos);
  return ids;
}

std::vector<int64_t> default_stop_ids(model::LlamaForCausalLMImpl& model, const text::Tokenizer& tokenizer) {
  return stop_ids_for({model.config().eos_token_ids, tokenizer.eos_id(), tokenizer.bos_id()});
}

GenerateResult generate_text(model::LlamaForCausalLMImpl& model, const text::Tokenizer& tokenizer,
                             const std::string& prompt, GenerateOptions options,
                             const std::function<void(const std::string&)>& on_text) {
  std::vector<int64_t> ids = prompt_ids_for(model, tokenizer, prompt);
  if (options.stop_ids.empty()) options.stop_ids = default_stop_ids(model, tokenizer);
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
