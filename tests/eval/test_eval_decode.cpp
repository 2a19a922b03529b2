// Greedy decoding through the decode state (KV cache for softmax layers,
// recurrent (S, z) + conv tails for LAWCAT layers) gives the same tokens as
// re-running the full parallel forward on the whole sequence at every step.
#include <ATen/ATen.h>

#include <algorithm>
#include <set>

#include "common/catch.h"
#include "eval/eval_runner.h"
#include "eval/eval_helpers.h"

using namespace lawcat;

namespace {

// The oracle: no state; forward(prefix) in parallel for every new token.
std::vector<int64_t> greedy_by_full_forward(model::LlamaForCausalLMImpl& m, std::vector<int64_t> ids, int64_t n,
                                            std::vector<at::Tensor>* logits = nullptr) {
  at::NoGradGuard g;
  std::vector<int64_t> out;
  for (int64_t i = 0; i < n; ++i) {
    at::Tensor l = m.forward(at::tensor(ids, at::kLong).unsqueeze(0)).select(1, static_cast<int64_t>(ids.size()) - 1)[0];
    if (logits) logits->push_back(l);
    const int64_t next = l.argmax().item<int64_t>();
    out.push_back(next);
    ids.push_back(next);
  }
  return out;
}

std::vector<int64_t> random_prompt(int64_t n, int64_t vocab, uint64_t seed) {
  at::manual_seed(seed);
  at::Tensor t = at::randint(3, vocab, {n}, at::kLong);
  return std::vector<int64_t>(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + n);
}

}  // namespace

TEST_CASE("greedy decoding through the decode state == full parallel forward at each step", "[eval][decode]") {
  test::SingleThread single_thread;
  struct Case {
    const char* name;
    bool lawcat;
    int64_t window;
    int64_t prompt;
  };
  // Prompts shorter and longer than one GLA chunk (64), decoding across the boundary.
  const Case cases[] = {{"softmax (KV cache)", false, 0, 37},   {"lawcat", true, 0, 37},
                        {"lawcat, prompt > chunk", true, 0, 70}, {"lawcat, decode crosses chunk", true, 0, 58},
                        {"lawcat + window 8", true, 8, 41}};
  for (const auto& c : cases) {
    CAPTURE(c.name);
    auto cfg = test::tiny_eval_config();
    auto m = test::tiny_random_model(cfg, 11, c.lawcat, c.window);
    m->eval();
    if (c.lawcat) REQUIRE(eval::all_layers_lawcat(*m));
    const auto prompt = random_prompt(c.prompt, cfg.vocab_size, 5 + c.prompt);
    const int64_t n = 16;
    std::vector<at::Tensor> ref_logits;
    const auto expected = greedy_by_full_forward(*m, prompt, n, &ref_logits);
    const auto got = eval::greedy_decode(*m, prompt, n);
    CHECK(got.tokens == expected);
    CHECK_FALSE(got.stopped);
    CHECK(got.state_bytes > 0);
    // The generated text is not a degenerate repetition of one token (the check means something).
    std::set<int64_t> distinct(expected.begin(), expected.end());
    CHECK(distinct.size() > 1);
    // Logits agree closely too (argmax equality above is the contract).
    at::NoGradGuard g;
    model::DecodeState st = m->new_decode_state(1);
    std::vector<int64_t> ids = prompt;
    at::Tensor l = m->forward(at::tensor(ids, at::kLong).unsqueeze(0), st).select(1, c.prompt - 1)[0];
    CHECK((l - ref_logits[0]).abs().max().item<double>() < 1e-3);
  }
}

TEST_CASE("greedy decoding stops at a stop id; LAWCAT state memory is constant in context length", "[eval][decode]") {
  test::SingleThread single_thread;
  auto cfg = test::tiny_eval_config();
  auto m = test::tiny_random_model(cfg, 3, true);
  const auto prompt = random_prompt(20, cfg.vocab_size, 1);
  const auto first = eval::greedy_decode(*m, prompt, 4);
  REQUIRE(first.tokens.size() == 4);
  const auto stopped = eval::greedy_decode(*m, prompt, 10, {first.tokens[1]});
  CHECK(stopped.stopped);
  CHECK(stopped.tokens.size() == static_cast<size_t>(std::find(first.tokens.begin(), first.tokens.end(), first.tokens[1]) -
                                                     first.tokens.begin() + 1));
  const auto short_ctx = eval::greedy_decode(*m, random_prompt(30, cfg.vocab_size, 2), 2);
  const auto long_ctx = eval::greedy_decode(*m, random_prompt(300, cfg.vocab_size, 2), 2);
  CHECK(short_ctx.state_bytes == long_ctx.state_bytes);
  auto teacher = test::tiny_random_model(cfg, 3, false);
  const auto t_short = eval::greedy_decode(*teacher, random_prompt(30, cfg.vocab_size, 2), 2);
  const auto t_long = eval::greedy_decode(*teacher, random_prompt(300, cfg.vocab_size, 2), 2);
  CHECK(t_long.state_bytes > t_short.state_bytes);  // the KV cache grows
  CHECK(eval::stop_ids_for({{2, 5}, 2, 1}) == std::vector<int64_t>{2, 5, 1});
}
