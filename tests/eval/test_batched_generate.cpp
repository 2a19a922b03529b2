// Batched generation with padding (issue 16 item 3): ragged prompts decoded together, left-
// padded with per-row masks and positions, give each prompt exactly the greedy tokens it gives
// alone, for softmax attention (KV cache), LAWCAT layers ((S, z) + conv caches) and the window
// hybrid (its ring), on the CPU: tiny random models, the real stories260K checkpoint and its
// LAWCAT swap, and `lawcat eval --batch-size` against --batch-size 1; and ppl's start token.
// A [cuda] case runs the same on the GPU (fp32 tokens; bf16 logits within a tolerance).
#include <ATen/ATen.h>

#include <algorithm>
#include <set>
#include <sstream>

#include "common/catch.h"
#include "eval/eval_helpers.h"
#include "eval/eval_runner.h"
#include "eval/generate.h"
#include "eval/long_ppl.h"
#include "io/llama2c_checkpoint.h"
#include "model/model_tokenizer.h"
#include "model/swap.h"
#include "util/error.h"
#include "util/fs.h"

using namespace lawcat;

namespace {

std::vector<int64_t> random_prompt(int64_t n, int64_t vocab, uint64_t seed) {
  at::manual_seed(seed);
  at::Tensor t = at::randint(3, vocab, {n}, at::kLong);
  return std::vector<int64_t>(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + n);
}

eval::GenerateOptions greedy(int64_t n, std::vector<int64_t> stop = {}) {
  eval::GenerateOptions o;
  o.max_new_tokens = n;
  o.sampling.greedy = true;
  o.stop_ids = std::move(stop);
  o.warn_positions = false;
  return o;
}

// The batch's prefill logits at each row's real tokens == the prompt's own, within `tol`
// relative to the largest logit (the mechanism behind the equal tokens, closely).
void check_prefill_logits(model::LlamaForCausalLMImpl& m, const std::vector<std::vector<int64_t>>& prompts,
                          double logit_tol) {
  at::NoGradGuard g;
  const int64_t B = static_cast<int64_t>(prompts.size());
  int64_t T = 0;
  for (const auto& p : prompts) T = std::max<int64_t>(T, static_cast<int64_t>(p.size()));
  at::Tensor ids = at::zeros({B, T}, at::kLong), mask = at::zeros({B, T}, at::kLong);
  for (int64_t b = 0; b < B; ++b) {
    const int64_t n = static_cast<int64_t>(prompts[b].size());
    ids[b].narrow(0, T - n, n).copy_(at::tensor(prompts[b], at::kLong));
    mask[b].narrow(0, T - n, n).fill_(1);
  }
  model::DecodeState st = m.new_decode_state(B);
  const at::Tensor batch_logits = m.logits(m.hidden_states(ids.to(m.device()), &st, mask)).to(at::kCPU, at::kFloat);
  for (int64_t b = 0; b < B; ++b) {
    const int64_t n = static_cast<int64_t>(prompts[b].size());
    model::DecodeState one = m.new_decode_state(1);
    const at::Tensor alone =
        m.forward(at::tensor(prompts[b], at::kLong).unsqueeze(0).to(m.device()), one)[0].to(at::kCPU, at::kFloat);
    const at::Tensor got = batch_logits[b].narrow(0, T - n, n);
    CAPTURE(b, n);
    CHECK(got.isfinite().all().item<bool>());
    CHECK((got - alone).abs().max().item<double>() <= logit_tol * std::max(1.0, alone.abs().max().item<double>()));
  }
}

// Every prompt's batched tokens == its tokens alone; and the batch's prefill logits at each
// row's real tokens == the prompt's own (the mechanism, closely).
void check_batch_equals_alone(model::LlamaForCausalLMImpl& m, const std::vector<std::vector<int64_t>>& prompts,
                              const eval::GenerateOptions& opt, double logit_tol = 1e-4) {
  const auto batched = eval::generate_batch(m, prompts, opt, /*pad_id=*/0);
  REQUIRE(batched.size() == prompts.size());
  std::set<int64_t> distinct;
  for (size_t i = 0; i < prompts.size(); ++i) {
    CAPTURE(i, prompts[i].size());
    const auto alone = eval::generate_ids(m, prompts[i], opt);
    CHECK(batched[i].new_ids == alone.new_ids);
    CHECK(batched[i].stop_reason == alone.stop_reason);
    CHECK(batched[i].prompt_ids == prompts[i]);
    distinct.insert(alone.new_ids.begin(), alone.new_ids.end());
  }
  CHECK(distinct.size() > 2);  // the tokens are not one repeated id (the check means something)

  check_prefill_logits(m, prompts, logit_tol);
}

struct Kind {
  const char* name;
  bool lawcat;
  int64_t window;
};
const Kind kKinds[] = {{"softmax (KV cache)", false, 0}, {"lawcat", true, 0}, {"lawcat + window 8", true, 8}};

}  // namespace

TEST_CASE("batched generation: ragged prompts give each prompt's tokens alone (tiny models)", "[eval][batch]") {
  test::SingleThread single_thread;
  auto cfg = test::tiny_eval_config();
  // Very different lengths: 1 token, shorter than the conv, than the window, one GLA chunk (64)
  // and beyond; decoding crosses a chunk boundary for some rows.
  const std::vector<int64_t> lengths = {1, 3, 70, 12, 37, 64};
  std::vector<std::vector<int64_t>> prompts;
  for (size_t i = 0; i < lengths.size(); ++i) prompts.push_back(random_prompt(lengths[i], cfg.vocab_size, 100 + i));
  for (const auto& k : kKinds) {
    CAPTURE(k.name);
    auto m = test::tiny_random_model(cfg, 11, k.lawcat, k.window);
    m->eval();
    if (k.lawcat) REQUIRE(eval::all_layers_lawcat(*m));
    check_batch_equals_alone(*m, prompts, greedy(16));
    // Rows that stop early (a stop id) keep decoding harmlessly: the others are unchanged.
    const auto first = eval::generate_ids(*m, prompts[2], greedy(4));
    check_batch_equals_alone(*m, prompts, greedy(16, {first.new_ids[1]}));
    // Two prompts, one of them as long as the batch (no pads in its row); the same prompt twice.
    check_batch_equals_alone(*m, {prompts[0], prompts[2]}, greedy(10));
    check_batch_equals_alone(*m, {prompts[3], prompts[3], prompts[1]}, greedy(10));
  }
}

TEST_CASE("batched generation: a padded prefill leaves LAWCAT states as the prompt alone", "[eval][batch]") {
  test::SingleThread single_thread;
  auto cfg = test::tiny_eval_config();
  auto m = test::tiny_random_model(cfg, 5, true);
  m->eval();
  at::NoGradGuard g;
  const auto p = random_prompt(5, cfg.vocab_size, 9);
  model::DecodeState alone = m->new_decode_state(1);
  m->forward(at::tensor(p, at::kLong).unsqueeze(0), alone);
  at::Tensor ids = at::zeros({1, 9}, at::kLong), mask = at::zeros({1, 9}, at::kLong);
  ids[0].narrow(0, 4, 5).copy_(at::tensor(p, at::kLong));
  mask[0].narrow(0, 4, 5).fill_(1);
  model::DecodeState padded = m->new_decode_state(1);
  m->forward(ids, padded, mask);
  for (int64_t l = 0; l < m->num_layers(); ++l) {
    auto* a = dynamic_cast<model::LawcatState*>(alone.layers[l].get());
    auto* b = dynamic_cast<model::LawcatState*>(padded.layers[l].get());
    REQUIRE((a && b));
    CHECK(at::allclose(a->S, b->S, 1e-5, 1e-6));
    CHECK(at::allclose(a->z, b->z, 1e-5, 1e-6));
    CHECK(at::allclose(a->conv_q_cache, b->conv_q_cache, 1e-5, 1e-6));
    CHECK(at::allclose(a->conv_k_cache, b->conv_k_cache, 1e-5, 1e-6));
  }
  // Without the mask the pads would count (so the equalities above mean something).
  model::DecodeState unmasked = m->new_decode_state(1);
  m->forward(ids, unmasked);
  CHECK_FALSE(at::allclose(dynamic_cast<model::LawcatState*>(alone.layers[0].get())->S,
                           dynamic_cast<model::LawcatState*>(unmasked.layers[0].get())->S, 1e-5, 1e-6));
  // Right padding or a row of pads only is refused.
  at::Tensor bad = at::ones({1, 9}, at::kLong);
  bad[0][8] = 0;
  model::DecodeState s2 = m->new_decode_state(1);
  CHECK_THROWS(m->forward(ids, s2, bad));
  model::DecodeState s3 = m->new_decode_state(1);
  CHECK_THROWS(m->forward(ids, s3, at::zeros({1, 9}, at::kLong)));
}

TEST_CASE("batched generation: stories260K and its LAWCAT swap, prompts alone == batched", "[eval][batch][stories260k]") {
  LAWCAT_SHARED_OR_SKIP(bin, "models/stories260K/stories260K.bin");
  LAWCAT_SHARED_OR_SKIP(tok512, "models/stories260K/tok512.bin");
  test::SingleThread single_thread;
  const auto dir = test::scratch_dir("batched_stories260K") / "stories260K";
  io::convert_llama2c(bin, tok512, dir);
  const auto tok = model::load_model_tokenizer(dir);
  for (const bool swap : {false, true}) {
    CAPTURE(swap);
    auto m = model::load_llama(dir, at::kCPU, at::kFloat);
    if (swap) {  // as the quickstart's swap (and eval's swap:DIR): default attention settings
      at::manual_seed(0);
      model::swap_to_lawcat(*m, config::AttentionConfig{});
      REQUIRE(eval::all_layers_lawcat(*m));
    }
    m->eval();
    std::vector<std::vector<int64_t>> prompts;
    for (const char* text : {"", "Once upon a time, there was a little",
                             "Lily and Ben went to the park. They saw a big dog with a red ball. The dog was very "
                             "happy and wanted to play. Lily said, \"Can we play with the dog, mom?\" Mom",
                             "Tom had a"})
      prompts.push_back(eval::prompt_ids_for(*m, *tok, text));
    REQUIRE(prompts[0] == std::vector<int64_t>{1});
    check_batch_equals_alone(*m, prompts, greedy(24, eval::default_stop_ids(*m, *tok)));
  }
}

TEST_CASE("lawcat eval --batch-size 3 and 16 give the records of --batch-size 1 (timings aside)", "[eval][batch]") {
  LAWCAT_SHARED_OR_SKIP(tok512, "models/stories260K/tok512.bin");
  test::SingleThread single_thread;
  const auto dir = test::scratch_dir("batched_eval");
  test::write_tiny_model_dir(dir / "soft", tok512, 4, false);
  test::write_tiny_model_dir(dir / "student", tok512, 4, true);
  auto run = [&](int64_t batch) {
    eval::EvalOptions o;
    o.task = "passkey";
    o.models = {(dir / "soft").string(), (dir / "student").string()};
    o.lengths = {200, 320};
    o.depths = {0, 50};
    o.samples = 2;  // 8 prompts per model: batches of 3, 3, 2, or one of 8 (< 16), ragged across the lengths
    o.max_new_tokens = 6;
    o.batch_size = batch;
    o.out = dir / ("out" + std::to_string(batch));
    o.progress = false;
    o.plot = false;
    o.print_table = false;
    eval::run_eval(o);
    std::vector<nlohmann::json> recs;
    std::istringstream lines(fs::read_text(o.out / "results.jsonl"));
    for (std::string line; std::getline(lines, line);) {
      if (line.empty()) continue;
      nlohmann::json j = nlohmann::json::parse(line);
      for (const char* k : {"prefill_seconds", "decode_seconds", "state_bytes"}) j.erase(k);
      recs.push_back(j);
    }
    return recs;
  };
  const auto one = run(1);
  REQUIRE(one.size() == 16);
  CHECK(run(3) == one);
  CHECK(run(16) == one);
}

TEST_CASE("ppl with no BOS or EOS token to start windows with is a DataError, not id -1", "[eval][batch]") {
  test::SingleThread single_thread;
  auto m = test::tiny_random_model(test::tiny_eval_config(), 2, false);
  m->eval();
  CHECK_THROWS_AS(eval::long_ppl(*m, {{5, 6, 7, 8, 9}}, 4, -1, false), DataError);
  CHECK(eval::long_ppl(*m, {{5, 6, 7, 8, 9}}, 4, 1, false).tokens > 0);
}

TEST_CASE("CUDA: batched generation with padding == each prompt alone", "[cuda][eval][batch]") {
  LAWCAT_REQUIRE_CUDA_OR_SKIP();
  auto cfg = test::tiny_eval_config();
  cfg.hidden_size = 256;
  cfg.intermediate_size = 512;
  cfg.num_attention_heads = 4;
  cfg.num_key_value_heads = 2;
  cfg.head_dim = 64;  // the fused kernels' head dim: the unpadded runs take them in 16 bits
  std::vector<std::vector<int64_t>> prompts;
  for (int64_t n : {1, 3, 70, 130, 12}) prompts.push_back(random_prompt(n, cfg.vocab_size, 300 + n));
  for (const auto& k : kKinds) {
    CAPTURE(k.name);
    auto m = test::tiny_random_model(cfg, 3, k.lawcat, k.window);
    {
      at::NoGradGuard g;
      for (auto& p : m->parameters()) p.mul_(0.5);
    }
    // fp32: the same tokens.
    m->to(at::kCUDA, at::kFloat);
    m->eval();
    check_batch_equals_alone(*m, prompts, greedy(12), 1e-3);
    // bf16: the unpadded prompt alone may take the fused prefill kernel, the padded batch the
    // separate ops (the kernels take no mask): logits agree within bf16 rounding (tokens may
    // differ at near-ties there, so they are not compared).
    m->to(at::kCUDA, at::kBFloat16);
    for (auto& [n, t] : model::lawcat_parameters(*m)) t.set_data(t.to(at::kCUDA, at::kFloat));
    check_prefill_logits(*m, prompts, 5e-2);
    CHECK(eval::generate_batch(*m, prompts, greedy(4)).size() == prompts.size());
  }
}
